//! The physical limit of flattening NDJSON on this machine, which the
//! flattening race prints beside its table: how long it takes only to read
//! the input files, and to read them and parse every document into
//! simd-json's tape (as silver does, with the same reused parser) on every
//! core. No engine can flatten the documents faster than it can parse them.
//!
//! usage: parse_limit FILE...
//! prints one JSON object: bytes, documents, threads, read_s, parse_s

use std::fs::File;
use std::io::Read;
use std::sync::mpsc;
use std::time::Instant;

use soundlake::json_tape::TapeParser;

/// Bytes read at a time; each chunk ends at a line's end.
const CHUNK: usize = 16 << 20;

/// Read `files` in chunks that end at a line's end, handing each to `each`.
fn chunks(files: &[String], mut each: impl FnMut(Vec<u8>)) -> u64 {
    let mut bytes = 0;
    for path in files {
        let mut file = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut carry = Vec::new();
        loop {
            let mut chunk = std::mem::take(&mut carry);
            let start = chunk.len();
            chunk.resize(start + CHUNK, 0);
            let read = file
                .read(&mut chunk[start..])
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            chunk.truncate(start + read);
            bytes += read as u64;
            if read == 0 {
                if !chunk.is_empty() {
                    each(chunk);
                }
                break;
            }
            if let Some(end) = chunk.iter().rposition(|b| *b == b'\n') {
                carry = chunk.split_off(end + 1);
                each(chunk);
            } else {
                carry = chunk;
            }
        }
    }
    bytes
}

/// Parse every line of `chunk`; how many documents it held.
fn parse(chunk: &[u8], parser: &mut TapeParser) -> u64 {
    let mut documents = 0;
    for line in chunk.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = std::str::from_utf8(line).unwrap_or_else(|e| panic!("a line is not UTF-8: {e}"));
        parser
            .walk(line, |_| ())
            .unwrap_or_else(|e| panic!("a line is not JSON: {e}"));
        documents += 1;
    }
    documents
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: parse_limit FILE...");
        std::process::exit(2);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let start = Instant::now();
    let bytes = chunks(&files, drop);
    let read_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let (to_workers, from_reader) = mpsc::sync_channel::<Vec<u8>>(threads);
    let from_reader = std::sync::Arc::new(std::sync::Mutex::new(from_reader));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let from_reader = from_reader.clone();
            std::thread::spawn(move || {
                let mut parser = TapeParser::default();
                let mut documents = 0;
                loop {
                    let next = from_reader.lock().expect("no worker panics").recv();
                    match next {
                        Ok(chunk) => documents += parse(&chunk, &mut parser),
                        Err(_) => return documents,
                    }
                }
            })
        })
        .collect();
    chunks(&files, |chunk| {
        to_workers.send(chunk).expect("the workers run");
    });
    drop(to_workers);
    let documents: u64 = workers
        .into_iter()
        .map(|w| w.join().expect("no worker panics"))
        .sum();
    let parse_s = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "bytes": bytes,
            "documents": documents,
            "threads": threads,
            "read_s": read_s,
            "parse_s": parse_s,
        })
    );
}

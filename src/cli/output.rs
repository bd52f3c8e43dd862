//! Where commands print: standard output, written so that a reader that
//! stops early does not turn into a panic.

/// `print!` for what a command prints: a reader that stops early
/// (`soundlake runs | head`) ends the output quietly, as it ends any Unix
/// tool, instead of a panic; the command's own outcome still sets the
/// exit code.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write_out(format_args!($($arg)*)) };
}

/// `out!` with a line break.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

pub fn write_out(args: std::fmt::Arguments) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    // Once standard output failed, nothing more goes to it.
    static CLOSED: AtomicBool = AtomicBool::new(false);
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing to standard output: {e}");
        }
    }
}

//! The real servers and readers the server suite talks to, each started on
//! a free loopback port and stopped when dropped. `bash tests/run.sh`
//! installs them: the Python ones (SecantusDB, DuckDB, PyArrow, PySpark)
//! into `.venv`, the others (Apache Kafka, HDFS, MinIO, FerretDB, Trino) into the
//! servers cache by `tests/servers/install.sh`. A missing one fails the test
//! that needs it, naming the command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::free_port;

/// The Python of `.venv`, where `bash tests/run.sh` installs DuckDB,
/// PyArrow and PySpark.
pub fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// Run the repository's Python script `script` (a path from the repository
/// root) with `.venv`'s Python and the test S3 credentials in its
/// environment; its standard output, once it succeeded.
pub fn python(script: &str, args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch_in(&mut Command::new(venv_python()), scratch.path())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Point a process's temporary files (Python's and Go's through `TMPDIR`,
/// every JVM's through `java.io.tmpdir`: Jetty's folders, the native
/// libraries snappy, zstd and lz4 unpack) into `dir`, removed after it:
/// left in `/tmp`, they piled up by the hundred at every run of the suite.
/// A JVM's performance counters go to `/tmp` whatever that says, and a
/// killed JVM's stay behind: the servers run without them.
fn scratch_in<'c>(command: &'c mut Command, dir: &Path) -> &'c mut Command {
    command.env("TMPDIR", dir).env(
        "JAVA_TOOL_OPTIONS",
        format!("-Djava.io.tmpdir={} -XX:-UsePerfData", dir.display()),
    )
}

/// Where `tests/servers/install.sh` puts the servers it installs.
fn servers_cache() -> PathBuf {
    std::env::var_os("SOUNDLAKE_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/soundlake/servers")
        })
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers")
        .join(name)
}

/// A server process on a free loopback port, killed when dropped, with a
/// folder of its own for its data (removed after it).
struct Server {
    child: std::process::Child,
    port: u16,
    data: tempfile::TempDir,
    /// Its temporary files, apart from its data.
    _scratch: tempfile::TempDir,
}

impl Server {
    /// Run `program` as `configure` sets it up for a port and a data folder,
    /// and wait until a line of its output contains `ready`.
    fn start(program: &Path, configure: impl Fn(&mut Command, u16, &Path), ready: &str) -> Server {
        assert!(
            program.exists(),
            "{} is missing: run `bash tests/run.sh`, which installs the test servers",
            program.display()
        );
        let data = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new(program);
        scratch_in(&mut command, scratch.path());
        configure(&mut command, port, data.path());
        // Servers announce readiness on stdout or stderr: read both.
        let (output, writer) = std::io::pipe().unwrap();
        let child = command
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        // Ready when it says so; the rest of its log is drained so it never
        // blocks on a full pipe.
        let mut log = std::io::BufReader::new(output);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut log, &mut line).unwrap();
            assert!(
                n > 0,
                "{} exited before it was ready:\n{seen}",
                program.display()
            );
            if line.contains(ready) {
                break;
            }
            seen.push_str(&line);
        }
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        Server {
            child,
            port,
            data,
            _scratch: scratch,
        }
    }

    fn data(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real MongoDB wire-protocol server.
pub struct MongoServer(Server);

impl MongoServer {
    /// SecantusDB (WiredTiger), in memory (`SOUNDLAKE_SECANTUSD` points at
    /// another binary).
    pub fn start() -> MongoServer {
        let program = std::env::var_os("SOUNDLAKE_SECANTUSD")
            .map(PathBuf::from)
            .unwrap_or_else(|| venv_python().with_file_name("secantusd-py"));
        let server = Server::start(
            &program,
            |cmd, port, _| {
                cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--storage-path", ":memory:", "--standalone"])
                    .args(["--log-level", "INFO"]);
            },
            "listening on",
        );
        MongoServer(server)
    }

    /// FerretDB v1 on its SQLite backend, built by
    /// `tests/servers/install.sh` into the servers cache.
    pub fn ferretdb() -> MongoServer {
        let server = Server::start(
            &servers_cache().join("bin/ferretdb-sqlite"),
            |cmd, port, data| {
                cmd.arg("-listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("-dir")
                    .arg(data);
            },
            "listening on",
        );
        MongoServer(server)
    }

    /// A URL naming a database of its own for `name`.
    pub fn url(&self, name: &str) -> String {
        format!("mongodb://127.0.0.1:{}/{name}", self.0.port)
    }
}

/// A real S3 server: MinIO, on one drive in a folder of its own, whose root
/// credentials are [`S3_ACCESS_KEY`] and [`S3_SECRET_KEY`].
pub struct S3Server(Server);

pub const S3_ACCESS_KEY: &str = "soundlake-test";
pub const S3_SECRET_KEY: &str = "soundlake-test-secret-never-printed";

impl S3Server {
    /// MinIO with the given buckets, empty.
    pub fn start(buckets: &[&str]) -> S3Server {
        let console = free_port();
        let server = Server::start(
            &servers_cache().join("bin/minio"),
            |cmd, port, data| {
                // A top-level folder of a fresh drive is a bucket to MinIO.
                for bucket in buckets {
                    std::fs::create_dir(data.join(bucket)).unwrap();
                }
                cmd.arg("server")
                    .arg(data)
                    .args(["--address", &format!("127.0.0.1:{port}")])
                    .args(["--console-address", &format!("127.0.0.1:{console}")])
                    .env("MINIO_ROOT_USER", S3_ACCESS_KEY)
                    .env("MINIO_ROOT_PASSWORD", S3_SECRET_KEY)
                    .env("MINIO_BROWSER", "off")
                    .env("MINIO_UPDATE", "off");
            },
            "API:",
        );
        S3Server(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    /// The folder MinIO keeps `bucket`'s objects in: an object `a/b` is a
    /// folder `a/b/` holding its `xl.meta`.
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.0.data().join(bucket)
    }

    /// Lake settings for `s3://<bucket>/<prefix>` on this server.
    pub fn lake(&self, bucket: &str, prefix: &str) -> soundlake::lake::LakeSettings {
        soundlake::lake::LakeSettings {
            url: format!("s3://{bucket}/{prefix}"),
            max_retries: 2,
            retry_timeout_secs: 10,
            s3: soundlake::lake::S3Settings {
                endpoint: self.endpoint(),
                region: "us-east-1".into(),
                access_key_id: S3_ACCESS_KEY.into(),
                secret_access_key: soundlake::secret::Secret::new(S3_SECRET_KEY),
                path_style: true,
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// A real Apache Kafka broker in KRaft mode, started by
/// `tests/servers/kafka-broker.sh` from the jars `tests/servers/install.sh`
/// puts in the servers cache.
pub struct KafkaBroker(Server);

impl KafkaBroker {
    pub fn start() -> KafkaBroker {
        let controller = free_port();
        let server = Server::start(
            Path::new("/bin/bash"),
            |cmd, port, data| {
                cmd.arg(script("kafka-broker.sh"))
                    .arg(port.to_string())
                    .arg(controller.to_string())
                    .arg(data);
            },
            "Kafka Server started",
        );
        KafkaBroker(server)
    }

    /// `host:port` for bootstrap.servers.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.0.port)
    }
}

/// A real HDFS: Hadoop's MiniDFSCluster (a NameNode and one DataNode),
/// started by `tests/servers/hdfs-cluster.sh` from the jars
/// `tests/servers/install.sh` puts in the servers cache.
pub struct HdfsCluster(Server);

impl HdfsCluster {
    pub fn start() -> HdfsCluster {
        let server = Server::start(
            Path::new("/bin/bash"),
            |cmd, port, data| {
                cmd.arg(script("hdfs-cluster.sh"))
                    .arg(port.to_string())
                    .arg(data);
            },
            "HDFS ready",
        );
        HdfsCluster(server)
    }

    /// `hdfs://127.0.0.1:<port>`, the NameNode.
    pub fn url(&self) -> String {
        format!("hdfs://127.0.0.1:{}", self.0.port)
    }
}

/// A real Trino, coordinator and worker in one, started by
/// `tests/servers/trino-server.sh` from what `tests/servers/install.sh`
/// puts in the servers cache, with one catalog, `delta`, of its Delta Lake
/// connector over a lake.
pub struct TrinoServer(Server);

impl TrinoServer {
    /// Over the local file system (`local:///` is `/`), its metastore in
    /// the server's own folder.
    pub fn local() -> TrinoServer {
        Self::start(|data| {
            format!(
                "fs.native-local.enabled=true\nlocal.location=/\n\
                 hive.metastore.catalog.dir=local://{}/metastore\n",
                data.display()
            )
        })
    }

    /// Over `bucket` of `s3`, its metastore in that bucket too.
    pub fn s3(s3: &S3Server, bucket: &str) -> TrinoServer {
        let endpoint = s3.endpoint();
        let bucket = bucket.to_string();
        Self::start(move |_| {
            format!(
                "fs.native-s3.enabled=true\ns3.endpoint={endpoint}\ns3.region=us-east-1\n\
                 s3.path-style-access=true\ns3.aws-access-key={S3_ACCESS_KEY}\n\
                 s3.aws-secret-key={S3_SECRET_KEY}\n\
                 hive.metastore.catalog.dir=s3://{bucket}/trino-metastore\n"
            )
        })
    }

    /// Trino with the `delta` catalog whose file system and metastore
    /// lines `storage` gives for the server's folder.
    fn start(storage: impl Fn(&Path) -> String) -> TrinoServer {
        let server = Server::start(
            Path::new("/bin/bash"),
            |cmd, port, data| {
                let catalogs = data.join("etc/catalog");
                std::fs::create_dir_all(&catalogs).unwrap();
                std::fs::write(
                    catalogs.join("delta.properties"),
                    format!(
                        "connector.name=delta_lake\nhive.metastore=file\n\
                         delta.register-table-procedure.enabled=true\n{}",
                        storage(data)
                    ),
                )
                .unwrap();
                cmd.arg(script("trino-server.sh"))
                    .arg(port.to_string())
                    .arg(data);
            },
            "SERVER STARTED",
        );
        TrinoServer(server)
    }

    /// The coordinator's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }
}

/// What an [`S3FaultProxy`] did to the requests it saw.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Faults {
    pub forwarded: u64,
    /// Answered 503 SlowDown without reaching the server.
    pub slow_down: u64,
    /// Answered 500 InternalError without reaching the server.
    pub internal_error: u64,
    /// Connection closed without an answer, before reaching the server.
    pub dropped_before: u64,
    /// Carried out by the server, then the connection closed without its
    /// answer: the client cannot tell whether it happened.
    pub dropped_after: u64,
}

/// An HTTP proxy in front of an S3 server that fails a share of the
/// requests, each in one of four ways (see [`Faults`]), chosen by a seeded
/// generator so a run is repeatable. Clients sign requests for the proxy's
/// address; it forwards them with their `Host` header, so signatures hold.
pub struct S3FaultProxy {
    port: u16,
    faults: std::sync::Arc<std::sync::Mutex<Faults>>,
    task: tokio::task::JoinHandle<()>,
}

impl S3FaultProxy {
    /// Fail about one request in `one_in` (from the `seed`).
    pub async fn start(upstream: String, one_in: u64, seed: u64) -> S3FaultProxy {
        use std::sync::{Arc, Mutex};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let rng = Arc::new(Mutex::new(soundlake::rng::Rng::seeded(seed)));
        let http = reqwest::Client::new();
        let counted = faults.clone();
        let task = tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let (faults, rng, http, upstream) =
                    (counted.clone(), rng.clone(), http.clone(), upstream.clone());
                let service = hyper::service::service_fn(move |request| {
                    let roll = {
                        let mut rng = rng.lock().unwrap();
                        (rng.next_u64() % one_in == 0).then(|| rng.next_u64() % 4)
                    };
                    proxy(
                        request,
                        roll,
                        faults.clone(),
                        http.clone(),
                        upstream.clone(),
                    )
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service),
                );
            }
        });
        S3FaultProxy { port, faults, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn faults(&self) -> Faults {
        *self.faults.lock().unwrap()
    }
}

impl Drop for S3FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers about one connection, not the message: never forwarded.
const HOP_BY_HOP: [&str; 3] = ["connection", "transfer-encoding", "keep-alive"];

type ProxyResponse = hyper::Response<http_body_util::Full<bytes::Bytes>>;

/// One request through the proxy, failed as `fault` says (0 to 3, in the
/// order of [`Faults`]) or forwarded. An `Err` makes hyper close the
/// connection without an answer.
async fn proxy(
    request: hyper::Request<hyper::body::Incoming>,
    fault: Option<u64>,
    faults: std::sync::Arc<std::sync::Mutex<Faults>>,
    http: reqwest::Client,
    upstream: String,
) -> Result<ProxyResponse, std::io::Error> {
    use http_body_util::BodyExt;

    let s3_error = |status: u16, code: &str| {
        let body =
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code></Error>");
        Ok(hyper::Response::builder()
            .status(status)
            .header("content-type", "application/xml")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap())
    };
    let dropped = || Err(std::io::Error::other("the proxy dropped the connection"));
    match fault {
        Some(0) => {
            faults.lock().unwrap().slow_down += 1;
            return s3_error(503, "SlowDown");
        }
        Some(1) => {
            faults.lock().unwrap().internal_error += 1;
            return s3_error(500, "InternalError");
        }
        Some(2) => {
            faults.lock().unwrap().dropped_before += 1;
            return dropped();
        }
        _ => {}
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    for hop in HOP_BY_HOP {
        headers.remove(hop);
    }
    let answer = http
        .request(parts.method, format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(std::io::Error::other)?;
    if fault.is_some() {
        faults.lock().unwrap().dropped_after += 1;
        return dropped();
    }
    faults.lock().unwrap().forwarded += 1;
    let mut response = hyper::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.map_err(std::io::Error::other)?;
    Ok(response.body(http_body_util::Full::new(body)).unwrap())
}

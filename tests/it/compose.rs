//! docker-compose.yml as an operator runs it: Debian's docker-compose
//! parses and validates it (no engine needed), and the settings the
//! services depend on agree with each other and with soundlake's own
//! configuration, checked by running the binary with the daemon's
//! environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{shipped as root, soundlake, succeed};

/// The stack as docker-compose resolves it (defaults substituted), as JSON.
fn resolved() -> Value {
    let out = Command::new("docker-compose")
        .current_dir(root())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["-f", "docker-compose.yml", "config"])
        .output()
        .expect("docker-compose is installed by tests/run.sh (Debian package docker-compose)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // docker-compose brings PyYAML; the config is turned into JSON with it.
    let mut json = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    json.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let out = json.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_compose_stack_validates_and_its_services_agree() {
    let stack = resolved();
    let services = stack["services"].as_object().unwrap();
    for name in [
        "mongodb",
        "minio",
        "minio-bucket",
        "trino",
        "dremio",
        "sim",
        "soundlake",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    for name in ["mongodb", "minio", "trino", "dremio", "soundlake"] {
        assert!(
            services[name]["healthcheck"]["test"].is_array(),
            "{name} has no health check"
        );
    }
    for volume in ["mongodb-data", "minio-data", "dremio-data"] {
        assert!(
            stack["volumes"].get(volume).is_some(),
            "no named volume {volume}"
        );
    }

    let env: BTreeMap<String, String> = services["soundlake"]["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(
        env["SOUNDLAKE__LANDING__URL"],
        "mongodb://mongodb:27017/soundlake"
    );
    assert_eq!(env["SOUNDLAKE__DAEMON__LISTEN"], "0.0.0.0:9187");
    assert!(services["soundlake"]["ports"].to_string().contains("9187"));

    // The bucket the setup job creates is the daemon's lake bucket, and the
    // one Trino's catalog keeps its metastore in; all use MinIO's endpoint
    // and credentials.
    let bucket = env["SOUNDLAKE__LAKE__URL"]
        .strip_prefix("s3://")
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let setup = services["minio-bucket"]["command"].to_string();
    assert!(
        setup.contains(&format!("mc mb --ignore-existing lake/{bucket}")),
        "{setup}"
    );
    let minio_env = &services["minio"]["environment"];
    assert_eq!(
        env["SOUNDLAKE__LAKE__S3__ACCESS_KEY_ID"],
        minio_env["MINIO_ROOT_USER"]
    );
    assert_eq!(
        env["SOUNDLAKE__LAKE__S3__SECRET_ACCESS_KEY"],
        minio_env["MINIO_ROOT_PASSWORD"]
    );
    assert_eq!(env["SOUNDLAKE__LAKE__S3__ENDPOINT"], "http://minio:9000");
    let mounts = services["trino"]["volumes"].to_string();
    assert!(
        mounts.contains("/etc/trino/catalog/delta.properties"),
        "{mounts}"
    );
    let catalog =
        std::fs::read_to_string(root().join("docker/trino/catalog/delta.properties")).unwrap();
    for line in [
        "connector.name=delta_lake",
        "delta.register-table-procedure.enabled=true",
        "fs.native-s3.enabled=true",
        "s3.endpoint=http://minio:9000",
        "s3.path-style-access=true",
        "s3.aws-access-key=${ENV:MINIO_ROOT_USER}",
        &format!("hive.metastore.catalog.dir=s3://{bucket}/metastore"),
    ] {
        assert!(
            catalog.lines().any(|l| l == line),
            "delta.properties lacks {line}"
        );
    }
    assert_eq!(
        services["trino"]["environment"], *minio_env,
        "Trino reads MinIO's credentials"
    );
    // Trino's image adds soundlake's functions to the release the tests run.
    let trino = root().join("docker/trino");
    assert_eq!(
        services["trino"]["build"]["context"]
            .as_str()
            .map(|c| Path::new(c) == trino),
        Some(true)
    );
    let dockerfile = std::fs::read_to_string(trino.join("Dockerfile")).unwrap();
    let jars = std::fs::read_to_string(root().join("tests/servers/jars.sh")).unwrap();
    let release = jars
        .lines()
        .find_map(|l| l.strip_prefix("trino_version="))
        .unwrap();
    for line in [
        "COPY soundlake-functions/ ./".to_string(),
        format!("FROM trinodb/trino:{release}"),
        "COPY --from=functions /src/target/soundlake-functions /usr/lib/trino/plugin/soundlake-functions"
            .to_string(),
    ] {
        assert!(
            dockerfile.lines().any(|l| l == line),
            "docker/trino/Dockerfile lacks {line}"
        );
    }

    // Every SOUNDLAKE__ key of the daemon is a real setting: the binary
    // refuses unknown keys, so validate passes only if all are known.
    // (The compose file's own definitions folder is the image's.)
    let daemon = || {
        let mut cmd = soundlake(root());
        cmd.envs(&env).env("SOUNDLAKE__DEFINITIONS__DIR", root());
        cmd
    };
    succeed(daemon().arg("validate"));
    // And the Trino DDL it prints points at that bucket.
    let ddl = succeed(daemon().args(["ddl", "--engine", "trino"]));
    assert!(ddl.contains(&format!(
        "table_location => 's3://{bucket}/lake/gold/dim_track'"
    )));
    assert!(!ddl.contains(&env["SOUNDLAKE__LAKE__S3__SECRET_ACCESS_KEY"]));

    // The image serves the daemon's port and holds the definitions.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for line in [
        "ENV SOUNDLAKE__DAEMON__LISTEN=0.0.0.0:9187",
        "EXPOSE 9187",
        "COPY bronze ./bronze",
        "COPY silver ./silver",
        "COPY gold ./gold",
        "COPY pipelines ./pipelines",
        "COPY artists.txt ./",
    ] {
        assert!(
            dockerfile.lines().any(|l| l == line),
            "Dockerfile lacks {line}"
        );
    }
    assert_eq!(
        services["soundlake"]["build"]["context"]
            .as_str()
            .map(|c| Path::new(c) == root()),
        Some(true)
    );
}

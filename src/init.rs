//! `soundlake init`: a ready project in any folder. The shipped definitions
//! (`bronze/`, `silver/`, `gold/`, `pipelines/`) and `artists.txt` are
//! embedded in the binary; `soundlake.toml` lists every setting with its
//! default, commented out, so the file is a map of what can be set.

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use crate::config::Settings;
use crate::error::{Error, Result};

static BRONZE: Dir = include_dir!("$CARGO_MANIFEST_DIR/bronze");
static SILVER: Dir = include_dir!("$CARGO_MANIFEST_DIR/silver");
static GOLD: Dir = include_dir!("$CARGO_MANIFEST_DIR/gold");
static PIPELINES: Dir = include_dir!("$CARGO_MANIFEST_DIR/pipelines");
const ARTISTS: &str = include_str!("../artists.txt");

/// The configuration file `init` writes.
pub const CONFIG_FILE: &str = "soundlake.toml";

/// Every file of a new project: its path within the project, and contents.
pub fn project_files() -> Vec<(PathBuf, String)> {
    let mut files = vec![
        (PathBuf::from(CONFIG_FILE), config_template()),
        (PathBuf::from("artists.txt"), ARTISTS.to_string()),
    ];
    for (folder, dir) in [
        ("bronze", &BRONZE),
        ("silver", &SILVER),
        ("gold", &GOLD),
        ("pipelines", &PIPELINES),
    ] {
        for file in dir.files() {
            let text = file.contents_utf8().expect("definitions are UTF-8");
            files.push((Path::new(folder).join(file.path()), text.to_string()));
        }
    }
    files
}

/// `soundlake.toml` with every setting at its default, commented out
/// under its section.
fn config_template() -> String {
    let defaults = toml::to_string(&Settings::default()).expect("settings serialize");
    let mut out = String::from(
        "# soundlake configuration. Every setting is shown at its default,\n\
         # commented out: uncomment a line to change it. Environment variables\n\
         # SOUNDLAKE__<SECTION>__<KEY> override this file; SPOTIFY_CLIENT_ID and\n\
         # SPOTIFY_CLIENT_SECRET are read too (keep the secret out of this file).\n",
    );
    for line in defaults.lines() {
        if line.starts_with('[') {
            out.push_str(&format!("\n{line}\n"));
        } else if !line.is_empty() && line != "notify = []" {
            out.push_str(&format!("# {line}\n"));
        }
    }
    out.push_str(&notify_example());
    out
}

/// A commented `[[notify]]` entry with every key at its default: none is
/// configured by default, and an empty list says nothing.
fn notify_example() -> String {
    let example = crate::notify::NotifySettings {
        command: vec!["/usr/local/bin/page-on-call".into()],
        ..toml::from_str("command = [\"x\"]").expect("the defaults deserialize")
    };
    let mut out = String::from(
        "\n# Notifications: any number of entries, each a webhook (url = \"https://…\",\n\
         # Slack-compatible) or a command given the JSON notice on its standard input.\n\
         # [[notify]]\n",
    );
    let keys = toml::to_string(&example).expect("settings serialize");
    for line in keys.lines().filter(|l| !l.starts_with("url")) {
        out.push_str(&format!("# {line}\n"));
    }
    out
}

/// Write a new project into `dir` (created if missing). Refuses, writing
/// nothing, when any of its files exists already. Returns what it wrote.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = project_files();
    let present: Vec<String> = files
        .iter()
        .filter(|(path, _)| dir.join(path).exists())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !present.is_empty() {
        return Err(Error::config(
            dir.display().to_string(),
            format!(
                "{} of the project's files exist already ({}{})",
                present.len(),
                present[..present.len().min(3)].join(", "),
                if present.len() > 3 { ", …" } else { "" }
            ),
            "init writes only into a folder without them: choose another folder, \
             or move those files away first",
        ));
    }
    let mut written = Vec::with_capacity(files.len());
    for (path, text) in files {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create the folder", parent, e))?;
        }
        std::fs::write(&target, text).map_err(|e| Error::io("write", &target, e))?;
        written.push(path);
    }
    Ok(written)
}

/// What `init` wrote, and the commands to run next.
pub fn render(dir: &Path, files: usize) -> String {
    let dir = dir.display();
    format!(
        "soundlake init: wrote {files} files into {dir}\n\
         Next (with soundlake on the PATH: `cargo install --path .` in its checkout):\n  \
         cd {dir}\n  \
         soundlake demo             # the whole pipeline offline, on the built-in simulator\n  \
         SPOTIFY_CLIENT_ID=… SPOTIFY_CLIENT_SECRET=… soundlake run spotify_catalog   # the real API\n"
    )
}

/// Refuse to run `command` where there is no project, saying how to make
/// one: the definitions folder and the names file must exist.
pub fn check_project(settings: &Settings, command: &str) -> Result<()> {
    let dir = &settings.definitions.dir;
    let missing: Vec<String> = [
        dir.join(crate::orchestrator::FOLDER),
        settings.crawl.artists_file.clone(),
    ]
    .into_iter()
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::config(
        dir.display().to_string(),
        format!(
            "no soundlake project here: {} missing",
            missing.join(" and ")
        ),
        format!("run `soundlake init` in this folder first, then `soundlake {command}`"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_names_every_setting_and_loads_as_the_defaults() {
        let template = config_template();
        let defaults = toml::to_string(&Settings::default()).unwrap();
        // `[[notify]]` has no entry by default: a commented one stands for it.
        for line in defaults.lines().filter(|l| l.contains(" = ")) {
            let shown = template.contains(&format!("# {line}\n"));
            assert!(shown || line == "notify = []", "{line}");
        }
        for key in [
            "[[notify]]",
            "command = ",
            "events = ",
            "timeout_secs = 10",
            "retries = 3",
        ] {
            assert!(template.contains(&format!("# {key}")), "{key}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CONFIG_FILE);
        std::fs::write(&file, &template).unwrap();
        let loaded = Settings::load_with_env(Some(&file), std::iter::empty()).unwrap();
        assert_eq!(
            toml::to_string(&loaded).unwrap(),
            defaults,
            "nothing set but what the defaults are"
        );
    }
}

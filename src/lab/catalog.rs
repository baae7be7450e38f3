//! The catalog: every lab under `labs/`, loaded and validated once.
//!
//! The binary carries the `labs/` folder (rust-embed), so `gantry serve` needs no files
//! beside it; `--labs-dir` and `gantry lab check DIR` read a folder on disk instead. Both
//! go through [`Catalog::from_files`], so they validate the same way.

use super::format::{parse_lab, Lab, LabError, LabFiles};
use rust_embed::RustEmbed;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(RustEmbed)]
#[folder = "labs/"]
struct Embedded;

/// Everything wrong with a labs folder, one problem per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct InvalidLabs(pub Vec<LabError>);

/// All labs, in folder order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    labs: Vec<Lab>,
}

impl Catalog {
    /// The labs built into the binary.
    pub fn embedded() -> Result<Catalog, InvalidLabs> {
        let mut files = BTreeMap::new();
        for path in Embedded::iter() {
            let Some(file) = Embedded::get(&path) else {
                continue;
            };
            match String::from_utf8(file.data.into_owned()) {
                Ok(text) => {
                    files.insert(path.to_string(), text);
                }
                Err(e) => {
                    return Err(InvalidLabs(vec![LabError::Io {
                        path: format!("labs/{path}"),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    }]))
                }
            }
        }
        Catalog::from_files("labs", &files)
    }

    /// The labs in a folder on disk.
    pub fn load_dir(dir: &Path) -> Result<Catalog, InvalidLabs> {
        let mut files = BTreeMap::new();
        let mut errors = Vec::new();
        read_tree(dir, "", &mut files, &mut errors);
        let shown = dir.display().to_string();
        let shown = shown.trim_end_matches('/');
        // A lab folder without any file would vanish from the file map: say it is empty.
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let prefix = format!("{name}/");
            if !name.starts_with('.')
                && entry.path().is_dir()
                && !files.keys().any(|k| k.starts_with(&prefix))
            {
                errors.push(LabError::NoLabToml {
                    dir: format!("{shown}/{name}"),
                });
            }
        }
        if !errors.is_empty() {
            return Err(InvalidLabs(errors));
        }
        Catalog::from_files(shown, &files)
    }

    /// Parses labs from `relative path -> text` (paths like `01-run/steps/01-x.md`).
    /// Files at the top (a README) are not labs and are skipped. `shown` prefixes paths in
    /// error messages.
    pub fn from_files(
        shown: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<Catalog, InvalidLabs> {
        let mut folders: BTreeMap<&str, LabFiles> = BTreeMap::new();
        for (path, text) in files {
            let Some((folder, rest)) = path.split_once('/') else {
                continue;
            };
            let lab = folders.entry(folder).or_insert_with(|| LabFiles {
                folder,
                shown: format!("{shown}/{folder}"),
                lab_toml: None,
                steps: Vec::new(),
            });
            if rest == "lab.toml" {
                lab.lab_toml = Some(text);
            } else if let Some(step) = rest.strip_prefix("steps/") {
                lab.steps.push((step, text));
            }
        }
        let mut labs: Vec<Lab> = Vec::new();
        let mut errors = Vec::new();
        for files in folders.values() {
            match parse_lab(files) {
                Ok(lab) => {
                    if let Some(other) = labs.iter().find(|l| l.id == lab.id) {
                        errors.push(LabError::DuplicateId {
                            dir: files.shown.clone(),
                            id: lab.id.to_string(),
                            other: format!("{shown}/{}", other.folder),
                        });
                    }
                    labs.push(lab);
                }
                Err(mut es) => errors.append(&mut es),
            }
        }
        if errors.is_empty() {
            Ok(Catalog { labs })
        } else {
            Err(InvalidLabs(errors))
        }
    }

    pub fn labs(&self) -> &[Lab] {
        &self.labs
    }

    /// The lab with this id.
    pub fn get(&self, id: &str) -> Option<&Lab> {
        self.labs.iter().find(|l| l.id.as_str() == id)
    }

    pub fn step_count(&self) -> usize {
        self.labs.iter().map(|l| l.steps.len()).sum()
    }

    pub fn check_count(&self) -> usize {
        self.labs.iter().map(Lab::check_count).sum()
    }
}

fn read_tree(
    dir: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, String>,
    errors: &mut Vec<LabError>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            errors.push(LabError::Io {
                path: dir.display().to_string(),
                source,
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel = format!("{prefix}{name}");
        if path.is_dir() {
            read_tree(&path, &format!("{rel}/"), files, errors);
        } else {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    files.insert(rel, text);
                }
                Err(source) => errors.push(LabError::Io {
                    path: path.display().to_string(),
                    source,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labs_in_the_binary_are_valid() {
        let c = Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
        assert!(c.labs().len() >= 3, "{} labs", c.labs().len());
        let run = c.get("run").expect("a lab with id run");
        assert_eq!(run.folder, "01-run");
        assert!(c.get("nope").is_none());
    }

    #[test]
    fn two_labs_with_one_id_are_refused() {
        let lab = "title = \"t\"\nsummary = \"s\"\nminutes = 5\n";
        let step = "+++\ntitle = \"x\"\n+++\n";
        let files: BTreeMap<String, String> = [
            ("01-run/lab.toml", lab),
            ("01-run/steps/01-x.md", step),
            ("02-run/lab.toml", lab),
            ("02-run/steps/01-x.md", step),
            ("README.md", "not a lab"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let e = Catalog::from_files("labs", &files).unwrap_err();
        assert_eq!(
            e.to_string(),
            "labs/02-run: lab id \"run\" is used by labs/01-run too: rename one of the folders"
        );
    }
}

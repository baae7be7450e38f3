//! The lab format: one folder per lab, `labs/<NN-slug>/`, holding
//!
//! - `lab.toml`: title, summary, minutes, and `[session]`, what the session needs (image,
//!   limits, features);
//! - `steps/<NN-slug>.md`: the steps in file-name order, each a `+++`-fenced TOML front
//!   matter (`title`, `hints`, `[[check]]`s) and a Markdown body.
//!
//! Parsing collects every problem it finds rather than stopping at the first, so that
//! `gantry lab check` can show an author all of them at once. Each problem names the file
//! (and the check number, or the line and column the TOML parser points at).

use super::check::{self, Check, CheckError};
use super::markdown;
use crate::runtime::spec::{CpuLimit, DiskLimit, ImageName, MemoryLimit, PidsLimit, SpecError};
use serde::Deserialize;
use std::fmt;

/// One problem in a lab's files. `file` is the path as the author would type it.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Toml { at: String, message: String },
    #[error("{file}: session.{field}: {source}")]
    Session {
        file: String,
        field: &'static str,
        source: SpecError,
    },
    #[error("{file}: session.features: unknown feature {name:?} (expected one of: {known})", known = Feature::NAMES.join(", "))]
    UnknownFeature { file: String, name: String },
    #[error("{dir}: a lab folder is named NN-slug with a lab id of 1 to 40 characters from a-z, 0-9 and - (e.g. 01-run)")]
    FolderName { dir: String },
    #[error("invalid lab id {0:?}: use 1 to 40 characters from a-z, 0-9 and -")]
    Id(String),
    #[error("{dir}: lab id {id:?} is used by {other} too: rename one of the folders")]
    DuplicateId {
        dir: String,
        id: String,
        other: String,
    },
    #[error("{dir}: missing lab.toml (title, summary, minutes, [session])")]
    NoLabToml { dir: String },
    #[error("{dir}: a lab needs at least one step: add steps/01-<slug>.md")]
    NoSteps { dir: String },
    #[error("{file}: a step file is named NN-slug.md, e.g. 02-limits.md (two digits, then a-z, 0-9 and -)")]
    StepName { file: String },
    #[error("{file}: a step starts with TOML front matter: a first line `+++`, then `title = \"...\"`, then a line `+++`")]
    NoFrontMatter { file: String },
    #[error(
        "{file}: the front matter opened on line 1 is never closed: add a line `+++` after it"
    )]
    UnclosedFrontMatter { file: String },
    #[error("{file}: {problem}")]
    Step { file: String, problem: CheckError },
    #[error("{file}: check {number}: {problem}")]
    Check {
        file: String,
        number: usize,
        problem: CheckError,
    },
    #[error("{file}: check {number}: container {name:?} is not started in this step or an earlier one (no `--name {name}` in their code blocks): a typo?")]
    UndeclaredContainer {
        file: String,
        number: usize,
        name: String,
    },
    #[error("{file}: link to {url:?}: use http(s), mailto, relative or #anchor links")]
    Link { file: String, url: String },
}

/// A lab's id: its folder name without the `NN-` prefix (`labs/01-run/` is `run`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabId(String);

impl LabId {
    pub fn parse(s: &str) -> Result<Self, LabError> {
        let ok = (1..=40).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(LabId(s.to_string()))
        } else {
            Err(LabError::Id(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Splits `NN-slug` into the slug, if the name has that shape (two digits, a dash, a
/// slug that is a valid [`LabId`]).
pub fn numbered_slug(name: &str) -> Option<&str> {
    let (num, slug) = name.split_once('-')?;
    let ok = num.len() == 2 && num.bytes().all(|b| b.is_ascii_digit());
    (ok && LabId::parse(slug).is_ok()).then_some(slug)
}

/// Something a lab needs from its session beyond a shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// The student's shell is a lab host that can start containers with `gantry run`.
    LabHost,
    /// Containers may create namespaces of their own (e.g. `unshare` inside a container).
    NestedNamespaces,
}

impl Feature {
    pub const NAMES: [&'static str; 2] = ["lab-host", "nested-namespaces"];

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::LabHost => "lab-host",
            Feature::NestedNamespaces => "nested-namespaces",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "lab-host" => Some(Feature::LabHost),
            "nested-namespaces" => Some(Feature::NestedNamespaces),
            _ => None,
        }
    }
}

/// `[session]` of `lab.toml`: what a session for this lab is started with.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionNeeds {
    pub image: ImageName,
    pub memory: Option<MemoryLimit>,
    pub cpus: Option<CpuLimit>,
    pub pids: Option<PidsLimit>,
    pub disk: Option<DiskLimit>,
    pub features: Vec<Feature>,
}

/// A lab, parsed and validated.
#[derive(Debug, Clone)]
pub struct Lab {
    pub id: LabId,
    /// The folder name, e.g. `01-run`; labs are listed in folder order.
    pub folder: String,
    pub title: String,
    pub summary: String,
    /// About how long the lab takes.
    pub minutes: u32,
    pub session: SessionNeeds,
    /// In order; step `n` (1-based) is `steps[n - 1]`.
    pub steps: Vec<Step>,
}

impl Lab {
    /// Step `number`, counting from 1 as the page and the API do.
    pub fn step(&self, number: usize) -> Option<&Step> {
        number.checked_sub(1).and_then(|i| self.steps.get(i))
    }

    pub fn check_count(&self) -> usize {
        self.steps.iter().map(|s| s.checks.len()).sum()
    }
}

/// One step of a lab.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based position in the lab.
    pub number: usize,
    /// The file name, e.g. `02-limits.md`.
    pub file: String,
    pub title: String,
    /// The Markdown body rendered to HTML, with a run button per command.
    pub html: String,
    /// The shell code blocks, in order: what the run buttons type.
    pub commands: Vec<String>,
    pub hints: Vec<String>,
    pub checks: Vec<Check>,
}

impl Step {
    pub fn has_check(&self) -> bool {
        !self.checks.is_empty()
    }
}

/// A lab's files as read from disk or from the binary.
pub struct LabFiles<'a> {
    /// The folder name, e.g. `01-run`.
    pub folder: &'a str,
    /// How paths are shown in errors, e.g. `labs/01-run`.
    pub shown: String,
    pub lab_toml: Option<&'a str>,
    /// `(file name, text)` of every file under `steps/`, in any order.
    pub steps: Vec<(&'a str, &'a str)>,
}

/// Line and column (1-based) of a byte offset, for error messages.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn toml_error(file: &str, whole: &str, start: usize, e: &toml::de::Error) -> LabError {
    let at = match e.span() {
        Some(span) => {
            let (line, col) = line_col(whole, start + span.start);
            format!("{file}:{line}:{col}")
        }
        None => file.to_string(),
    };
    LabError::Toml {
        at,
        message: e.message().trim().to_string(),
    }
}

/// A limit written as a string or a number (`pids = 64` or `pids = "64"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Int(n) => n.to_string(),
            Scalar::Float(f) => f.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    title: String,
    summary: String,
    minutes: u32,
    #[serde(default)]
    session: RawSession,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    image: Option<String>,
    memory: Option<Scalar>,
    cpus: Option<Scalar>,
    pids: Option<Scalar>,
    disk: Option<Scalar>,
    #[serde(default)]
    features: Vec<String>,
}

fn limit<T>(
    errors: &mut Vec<LabError>,
    file: &str,
    field: &'static str,
    value: &Option<Scalar>,
    parse: fn(&str) -> Result<T, SpecError>,
) -> Option<T> {
    let text = value.as_ref()?.text();
    parse(&text)
        .map_err(|source| {
            errors.push(LabError::Session {
                file: file.to_string(),
                field,
                source,
            })
        })
        .ok()
}

fn parse_session(raw: &RawSession, file: &str, errors: &mut Vec<LabError>) -> SessionNeeds {
    let image = match ImageName::parse(raw.image.as_deref().unwrap_or("busybox")) {
        Ok(i) => i,
        Err(source) => {
            errors.push(LabError::Session {
                file: file.to_string(),
                field: "image",
                source,
            });
            ImageName::parse("busybox").expect("busybox is a valid image name")
        }
    };
    let mut features = Vec::new();
    for name in &raw.features {
        match Feature::parse(name) {
            Some(f) => features.push(f),
            None => errors.push(LabError::UnknownFeature {
                file: file.to_string(),
                name: name.clone(),
            }),
        }
    }
    SessionNeeds {
        image,
        memory: limit(errors, file, "memory", &raw.memory, MemoryLimit::parse),
        cpus: limit(errors, file, "cpus", &raw.cpus, CpuLimit::parse),
        pids: limit(errors, file, "pids", &raw.pids, PidsLimit::parse),
        disk: limit(errors, file, "disk", &raw.disk, DiskLimit::parse),
        features,
    }
}

/// Splits a step file into its front matter and body, with the byte offset of the front
/// matter (for error positions).
fn front_matter<'a>(file: &str, text: &'a str) -> Result<(&'a str, usize, &'a str), LabError> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "+++" {
        return Err(LabError::NoFrontMatter {
            file: file.to_string(),
        });
    }
    let start = first.len();
    let mut pos = start;
    for line in lines {
        if line.trim_end() == "+++" {
            return Ok((&text[start..pos], start, &text[pos + line.len()..]));
        }
        pos += line.len();
    }
    Err(LabError::UnclosedFrontMatter {
        file: file.to_string(),
    })
}

/// Container names that the commands start (`--name web` or `--name=web`).
pub fn started_containers(commands: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for command in commands {
        let mut words = command.split_whitespace();
        while let Some(word) = words.next() {
            let name = match word.strip_prefix("--name") {
                Some("") => words.next(),
                Some(rest) => rest.strip_prefix('='),
                None => None,
            };
            if let Some(n) = name {
                names.push(n.trim_matches(['"', '\'']).to_string());
            }
        }
    }
    names
}

/// Parses one step file; `known` holds the containers started by earlier steps and gets
/// this step's added to it.
fn parse_step(
    file: &str,
    number: usize,
    text: &str,
    known: &mut Vec<String>,
    errors: &mut Vec<LabError>,
) -> Option<Step> {
    let (front, start, body) = match front_matter(file, text) {
        Ok(parts) => parts,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let table: toml::Table = match toml::from_str(front) {
        Ok(t) => t,
        Err(e) => {
            errors.push(toml_error(file, text, start, &e));
            return None;
        }
    };
    let step_error = |problem| LabError::Step {
        file: file.to_string(),
        problem,
    };
    let allowed = ["title", "hints", "check"];
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    for key in keys {
        if !allowed.contains(&key.as_str()) {
            errors.push(step_error(CheckError::UnknownField {
                field: key.clone(),
                kind: None,
                expected: allowed.join(", "),
            }));
        }
    }
    let title = match table.get("title") {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(toml::Value::String(_)) => {
            errors.push(step_error(CheckError::Empty { field: "title" }));
            String::new()
        }
        None => {
            errors.push(step_error(CheckError::MissingField {
                field: "title",
                kind: None,
            }));
            String::new()
        }
        Some(_) => {
            errors.push(step_error(CheckError::WrongType {
                field: "title",
                expected: "a string",
                found: "another type",
            }));
            String::new()
        }
    };
    let hints = check::strings(&table, "hints")
        .map_err(|e| errors.push(step_error(e)))
        .ok()
        .flatten()
        .unwrap_or_default();

    let rendered = markdown::render(body);
    for url in &rendered.bad_links {
        errors.push(LabError::Link {
            file: file.to_string(),
            url: url.clone(),
        });
    }
    known.extend(started_containers(&rendered.commands));

    let mut checks = Vec::new();
    let tables: &[toml::Value] = match table.get("check") {
        None => &[],
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            errors.push(step_error(CheckError::WrongType {
                field: "check",
                expected: "a list of [[check]] tables",
                found: "a single value",
            }));
            &[]
        }
    };
    for (i, value) in tables.iter().enumerate() {
        let number = i + 1;
        let check_error = |problem| LabError::Check {
            file: file.to_string(),
            number,
            problem,
        };
        let Some(t) = value.as_table() else {
            errors.push(check_error(CheckError::WrongType {
                field: "check",
                expected: "a list of [[check]] tables",
                found: "a list of other values",
            }));
            continue;
        };
        match Check::parse(t) {
            Ok(c) => {
                for name in c.containers() {
                    if !known.iter().any(|k| k == name.as_str()) {
                        errors.push(LabError::UndeclaredContainer {
                            file: file.to_string(),
                            number,
                            name: name.to_string(),
                        });
                    }
                }
                checks.push(c);
            }
            Err(problem) => errors.push(check_error(problem)),
        }
    }
    Some(Step {
        number,
        file: file.rsplit('/').next().unwrap_or(file).to_string(),
        title,
        html: rendered.html,
        commands: rendered.commands,
        hints,
        checks,
    })
}

/// Parses one lab. On failure, returns every problem found.
pub fn parse_lab(files: &LabFiles) -> Result<Lab, Vec<LabError>> {
    let mut errors = Vec::new();
    let dir = &files.shown;
    let id = numbered_slug(files.folder).and_then(|s| LabId::parse(s).ok());
    if id.is_none() {
        errors.push(LabError::FolderName { dir: dir.clone() });
    }

    let toml_file = format!("{dir}/lab.toml");
    let meta = match files.lab_toml {
        None => {
            errors.push(LabError::NoLabToml { dir: dir.clone() });
            None
        }
        Some(text) => match toml::from_str::<RawLab>(text) {
            Ok(raw) => {
                let session = parse_session(&raw.session, &toml_file, &mut errors);
                Some((raw, session))
            }
            Err(e) => {
                errors.push(toml_error(&toml_file, text, 0, &e));
                None
            }
        },
    };

    let mut step_files: Vec<(&str, &str)> = Vec::new();
    for (name, text) in &files.steps {
        let ok = name.strip_suffix(".md").and_then(numbered_slug).is_some();
        if ok {
            step_files.push((name, text));
        } else {
            errors.push(LabError::StepName {
                file: format!("{dir}/steps/{name}"),
            });
        }
    }
    step_files.sort();
    if files.steps.is_empty() {
        errors.push(LabError::NoSteps { dir: dir.clone() });
    }
    let mut known = Vec::new();
    let mut steps = Vec::new();
    for (i, (name, text)) in step_files.iter().enumerate() {
        let file = format!("{dir}/steps/{name}");
        if let Some(step) = parse_step(&file, i + 1, text, &mut known, &mut errors) {
            steps.push(step);
        }
    }

    match (id, meta) {
        (Some(id), Some((raw, session))) if errors.is_empty() => Ok(Lab {
            id,
            folder: files.folder.to_string(),
            title: raw.title,
            summary: raw.summary,
            minutes: raw.minutes,
            session,
            steps,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "title = \"Run\"\nsummary = \"s\"\nminutes = 20\n\n[session]\nmemory = \"256m\"\nfeatures = [\"lab-host\"]\n";
    const STEP: &str = "+++\ntitle = \"Start web\"\nhints = [\"look at ps\"]\n\n[[check]]\nassert = \"running\"\ncontainer = \"web\"\nmessage = \"web is not running\"\n+++\nStart it:\n\n```sh\ngantry run -d --name web busybox sleep 3600\n```\n";

    fn lab(lab_toml: &str, steps: &[(&'static str, &str)]) -> Result<Lab, Vec<String>> {
        let files = LabFiles {
            folder: "01-run",
            shown: "labs/01-run".into(),
            lab_toml: Some(lab_toml),
            steps: steps.to_vec(),
        };
        parse_lab(&files).map_err(|es| es.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn a_good_lab_parses_with_its_steps_commands_and_checks() {
        let l = lab(
            LAB,
            &[
                ("02-more.md", "+++\ntitle = \"More\"\n+++\nText"),
                ("01-start.md", STEP),
            ],
        )
        .unwrap();
        assert_eq!(l.id.as_str(), "run");
        assert_eq!(l.minutes, 20);
        assert_eq!(l.session.image.as_str(), "busybox");
        assert_eq!(l.session.memory, Some(MemoryLimit::parse("256m").unwrap()));
        assert_eq!(l.session.features, [Feature::LabHost]);
        assert_eq!(l.steps.len(), 2);
        let s = l.step(1).unwrap();
        assert_eq!((s.number, s.title.as_str()), (1, "Start web"));
        assert_eq!(s.commands, ["gantry run -d --name web busybox sleep 3600"]);
        assert_eq!(s.hints, ["look at ps"]);
        assert!(s.has_check());
        assert!(!l.step(2).unwrap().has_check());
        assert!(l.step(0).is_none() && l.step(3).is_none());
        assert_eq!(l.check_count(), 1);
    }

    #[test]
    fn bad_toml_is_reported_with_its_line_and_column() {
        let errs = lab(
            LAB,
            &[("01-start.md", "+++\ntitle = \"x\"\nhints = [oops]\n+++\n")],
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("labs/01-run/steps/01-start.md:3:"),
            "{errs:?}"
        );
        let errs = lab(
            "title = \"Run\"\nsummary = \"s\"\nminutes = \"soon\"\n",
            &[("01-start.md", STEP)],
        )
        .unwrap_err();
        assert!(errs[0].starts_with("labs/01-run/lab.toml:3:"), "{errs:?}");
    }

    #[test]
    fn unknown_fields_in_lab_toml_are_refused() {
        let errs = lab(
            &format!("{LAB}colour = \"blue\"\n"),
            &[("01-start.md", STEP)],
        )
        .unwrap_err();
        assert!(
            errs[0].contains("labs/01-run/lab.toml:") && errs[0].contains("colour"),
            "{errs:?}"
        );
        let errs = lab(&LAB.replace("lab-host", "gpu"), &[("01-start.md", STEP)]).unwrap_err();
        assert!(errs[0].contains("unknown feature \"gpu\""), "{errs:?}");
    }

    #[test]
    fn a_bad_session_limit_keeps_the_runtimes_message() {
        let errs = lab(&LAB.replace("256m", "lots"), &[("01-start.md", STEP)]).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0]
                .starts_with("labs/01-run/lab.toml: session.memory: invalid memory limit \"lots\""),
            "{errs:?}"
        );
    }

    #[test]
    fn an_unknown_assert_kind_names_the_file_and_check_number() {
        let step = STEP.replace("\"running\"", "\"runing\"");
        let errs = lab(LAB, &[("01-start.md", &step)]).unwrap_err();
        assert!(
            errs[0].starts_with(
                "labs/01-run/steps/01-start.md: check 1: unknown assert kind \"runing\""
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn a_check_without_a_message_is_refused() {
        let step = STEP.replace("message = \"web is not running\"\n", "");
        let errs = lab(LAB, &[("01-start.md", &step)]).unwrap_err();
        assert_eq!(
            errs,
            ["labs/01-run/steps/01-start.md: check 1: missing field `message`"]
        );
    }

    #[test]
    fn a_badly_named_step_file_is_refused() {
        let errs = lab(
            LAB,
            &[("01-start.md", STEP), ("limits.md", STEP), ("3-x.md", STEP)],
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with("labs/01-run/steps/limits.md: a step file is named NN-slug.md"))
        );
    }

    #[test]
    fn a_check_on_a_container_no_step_starts_is_a_typo() {
        let step = STEP.replace("container = \"web\"", "container = \"wbe\"");
        let errs = lab(LAB, &[("01-start.md", &step)]).unwrap_err();
        assert!(
            errs[0].contains("check 1: container \"wbe\" is not started"),
            "{errs:?}"
        );
        // A container started by an earlier step may be checked later.
        let later = "+++\ntitle = \"Later\"\n[[check]]\nrun = \"true\"\nin = \"web\"\nmessage = \"m\"\n+++\n";
        lab(LAB, &[("01-start.md", STEP), ("02-later.md", later)]).unwrap();
        let errs = lab(LAB, &[("01-later.md", later), ("02-start.md", STEP)]).unwrap_err();
        assert!(
            errs[0].contains("container \"web\" is not started"),
            "{errs:?}"
        );
    }

    #[test]
    fn every_error_is_collected_not_only_the_first() {
        let bad_check = STEP.replace("\"running\"", "\"runing\"");
        let errs = lab(
            &LAB.replace("256m", "lots"),
            &[
                ("01-start.md", "no front matter"),
                ("02-x.md", &bad_check),
                ("x.md", STEP),
            ],
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
    }

    #[test]
    fn front_matter_must_be_present_and_closed() {
        let errs = lab(LAB, &[("01-start.md", "# Start\n")]).unwrap_err();
        assert!(
            errs[0].contains("a step starts with TOML front matter"),
            "{errs:?}"
        );
        let errs = lab(LAB, &[("01-start.md", "+++\ntitle = \"x\"\n")]).unwrap_err();
        assert!(errs[0].contains("never closed"), "{errs:?}");
    }

    #[test]
    fn a_lab_needs_a_numbered_folder_and_a_step() {
        let files = LabFiles {
            folder: "run",
            shown: "labs/run".into(),
            lab_toml: Some(LAB),
            steps: vec![],
        };
        let errs: Vec<String> = parse_lab(&files)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(
            errs[0].starts_with("labs/run: a lab folder is named NN-slug"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("labs/run: a lab needs at least one step"),
            "{errs:?}"
        );
    }

    #[test]
    fn lab_ids_are_short_lowercase_slugs() {
        assert!(LabId::parse("cgroups-v2").is_ok());
        assert!(LabId::parse("").is_err());
        assert!(LabId::parse("Run").is_err());
        assert!(LabId::parse("../x").is_err());
        assert!(LabId::parse(&"a".repeat(41)).is_err());
        assert_eq!(numbered_slug("01-run"), Some("run"));
        assert_eq!(numbered_slug("1-run"), None);
    }

    #[test]
    fn names_after_dash_dash_name_are_started_containers() {
        let cmds = vec![
            "gantry run -d --name web busybox".to_string(),
            "gantry run --name=db x && gantry run --name \"c\" y".to_string(),
        ];
        assert_eq!(started_containers(&cmds), ["web", "db", "c"]);
    }
}

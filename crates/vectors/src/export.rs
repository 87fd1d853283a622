//! One file per case (`e2ee-backup-vectors export`), for implementers whose test harness prefers
//! a directory of small files to the grouped Wycheproof-like envelope (the test-vector
//! conventions of `spec/README.md`, and the families of spec sections 2.2, 2.3, 3.8, 4.3, 4.14,
//! 6.9 and 7.11).
//!
//! ```text
//! OUT/<family>/<tcId, 4 digits>-<result>.json
//! {
//!   "family": "key-encoding",          the vector file's name without ".json"
//!   "algorithm": ..., "schemaVersion": ..., "generator": ..., "header": ...   copied from the file
//!   "group": { every field of the case's group except "tests" },
//!   "notes": { each flag the case carries: its description },
//!   "test": { the case, unchanged }
//! }
//! ```
//!
//! The export is derived, not a second source: it is written from the grouped files, a test
//! checks that every case comes out exactly once and unchanged, and it is not kept in the
//! repository.

use std::fs;
use std::path::Path;

use serde_json::{Map, Value};

/// The grouped vector files that are exported (the family names).
fn families(dir: &Path) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_file()
            && path.extension().is_some_and(|e| e == "json")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// One exported case: its path below the output directory and its JSON text.
pub struct CaseFile {
    /// `<family>/<tcId>-<result>.json`.
    pub path: String,
    /// Pretty-printed JSON, ending with a newline.
    pub contents: String,
}

/// Splits one vector file into its cases.
pub fn split(family: &str, file: &Value) -> Result<Vec<CaseFile>, String> {
    let notes = file["notes"].as_object().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for group in file["testGroups"].as_array().ok_or_else(|| format!("{family}: no testGroups"))? {
        let mut shared =
            group.as_object().ok_or_else(|| format!("{family}: a group is not an object"))?.clone();
        let tests =
            shared.remove("tests").ok_or_else(|| format!("{family}: a group without tests"))?;
        for case in tests.as_array().ok_or_else(|| format!("{family}: tests is not a list"))? {
            let id =
                case["tcId"].as_u64().ok_or_else(|| format!("{family}: a case without tcId"))?;
            let result = case["result"].as_str().unwrap_or("case");
            let mut carried = Map::new();
            for flag in case["flags"].as_array().into_iter().flatten() {
                if let Some(name) = flag.as_str()
                    && let Some(note) = notes.get(name)
                {
                    carried.insert(name.to_owned(), note.clone());
                }
            }
            let mut one = Map::new();
            one.insert("family".into(), Value::from(family));
            for key in ["algorithm", "schemaVersion", "generator", "header"] {
                if let Some(value) = file.get(key) {
                    one.insert(key.into(), value.clone());
                }
            }
            one.insert("group".into(), Value::Object(shared.clone()));
            one.insert("notes".into(), Value::Object(carried));
            one.insert("test".into(), case.clone());
            let text =
                serde_json::to_string_pretty(&Value::Object(one)).map_err(|e| e.to_string())?;
            out.push(CaseFile {
                path: format!("{family}/{id:04}-{result}.json"),
                contents: text + "\n",
            });
        }
    }
    Ok(out)
}

/// Writes every case of the vector files in `dir` into `out`, one file each; returns how many.
/// Refuses an `out` that already holds files, so that an export never mixes with an older one.
pub fn export(dir: &Path, out: &Path) -> Result<usize, String> {
    if out.exists()
        && fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))?.next().is_some()
    {
        return Err(format!(
            "{} is not empty; export into a new or empty directory",
            out.display()
        ));
    }
    let mut written = 0;
    for family in families(dir)? {
        let path = dir.join(format!("{family}.json"));
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let cases = split(&family, &file)?;
        fs::create_dir_all(out.join(&family)).map_err(|e| format!("{}: {e}", out.display()))?;
        for case in cases {
            let target = out.join(&case.path);
            if target.exists() {
                return Err(format!("{family}: two cases would be written to {}", case.path));
            }
            fs::write(&target, case.contents).map_err(|e| format!("{}: {e}", target.display()))?;
            written += 1;
        }
    }
    Ok(written)
}

//! `e2ee-backup-vectors export`: every case of every family comes out once, unchanged, with its
//! group's shared fields and the notes of its flags; an export never writes over another.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors")
}

#[test]
fn every_case_is_exported_once_and_unchanged() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("cases");
    let written = e2ee_backup_vectors::export::export(&vectors_dir(), &target).unwrap();

    // What the grouped files hold: (family, tcId) -> (group type, case).
    let mut expected = BTreeMap::new();
    for entry in fs::read_dir(vectors_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let family = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let file: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let mut count = 0;
        for group in file["testGroups"].as_array().unwrap() {
            for case in group["tests"].as_array().unwrap() {
                let id = case["tcId"].as_u64().unwrap();
                let old =
                    expected.insert((family.clone(), id), (group["type"].clone(), case.clone()));
                assert!(old.is_none(), "{family} tcId {id} twice");
                count += 1;
            }
        }
        assert_eq!(Some(count), file["numberOfTests"].as_u64(), "{family}");
    }
    assert_eq!(written, expected.len());
    assert!(written > 250, "only {written} cases");

    let mut seen = 0;
    for family_dir in fs::read_dir(&target).unwrap() {
        for case_file in fs::read_dir(family_dir.unwrap().path()).unwrap() {
            let path = case_file.unwrap().path();
            let one: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
            let family = one["family"].as_str().unwrap().to_owned();
            let id = one["test"]["tcId"].as_u64().unwrap();
            let (group_type, case) = &expected[&(family.clone(), id)];
            assert_eq!(&one["test"], case, "{}", path.display());
            assert_eq!(&one["group"]["type"], group_type, "{}", path.display());
            assert!(one["group"].get("tests").is_none());
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(name, format!("{id:04}-{}.json", case["result"].as_str().unwrap()));
            for flag in case["flags"].as_array().into_iter().flatten() {
                assert!(
                    one["notes"][flag.as_str().unwrap()]["description"].is_string(),
                    "{family} tcId {id}: the note of flag {flag} is missing"
                );
            }
            seen += 1;
        }
    }
    assert_eq!(seen, written);

    // A second export into the same directory is refused, and changes nothing.
    let again = e2ee_backup_vectors::export::export(&vectors_dir(), &target);
    assert!(again.unwrap_err().contains("not empty"));
}

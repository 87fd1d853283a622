//! The published vectors are exactly what the generator writes, follow their JSON Schemas,
//! and every case decrypts or is rejected as it says.

use std::path::PathBuf;

use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors")
}

#[test]
fn published_vectors_match_the_generator_and_verify() {
    let files = e2ee_backup_vectors::check_dir(&vectors_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(files, 8);
}

#[test]
fn every_vector_file_follows_its_schema() {
    for name in ["key-encoding", "key-schedule", "backup-format", "crypt15"] {
        let read = |path: PathBuf| -> Value {
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
        };
        let schema = read(vectors_dir().join(format!("schemas/{name}.schema.json")));
        let vectors = read(vectors_dir().join(format!("{name}.json")));
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator.iter_errors(&vectors).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn a_changed_expectation_is_caught() {
    let path = vectors_dir().join("backup-format.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let first_invalid = &mut json["testGroups"][1]["tests"][0];
    first_invalid["error"] = "wrong-key".into();
    assert!(e2ee_backup_vectors::verify(&json).is_err());
    let mut json2: Value = serde_json::from_str(
        &std::fs::read_to_string(vectors_dir().join("key-schedule.json")).unwrap(),
    )
    .unwrap();
    json2["testGroups"][0]["tests"][0]["payloadKey"] = "00".repeat(32).into();
    assert!(e2ee_backup_vectors::verify(&json2).is_err());
    let mut json3: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("crypt15.json")).unwrap())
            .unwrap();
    json3["testGroups"][1]["tests"][0]["error"] = "corrupt".into();
    assert!(e2ee_backup_vectors::verify(&json3).is_err());
}

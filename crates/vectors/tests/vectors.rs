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
    assert_eq!(files, 16);
}

/// Only the replay, as another implementation would run it: each committed case against this
/// implementation, without regenerating anything. This is the suite `cargo mutants` runs to
/// measure which wrong implementations the vectors catch (see the spec's coverage table).
#[test]
fn replay_only() {
    let mut cases = 0;
    for name in FAMILIES {
        let path = vectors_dir().join(format!("{name}.json"));
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cases += e2ee_backup_vectors::verify(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(cases > 250, "only {cases} cases");
}

const FAMILIES: [&str; 8] = [
    "key-encoding",
    "key-schedule",
    "backup-format",
    "crypt15",
    "vault",
    "fleet-bundle",
    "replication",
    "snapshot",
];

#[test]
fn every_vector_file_follows_its_schema() {
    for name in FAMILIES {
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

/// A client that skips a check of spec 4.3, or makes them in another order, fails a case.
#[test]
fn fleet_bundle_cases_catch_a_changed_expectation() {
    let path = vectors_dir().join("fleet-bundle.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut changed = Vec::new();
    // The expired-and-rolled-back case, answered as if rollback were checked first.
    let mut order = json.clone();
    let case = order["testGroups"][1]["tests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["comment"].as_str().unwrap().starts_with("expired and rolled back"))
        .unwrap();
    case["error"] = "rollback".into();
    changed.push(order);
    // The boundary now = not_after, answered as expired.
    let mut boundary = json.clone();
    let case = &mut boundary["testGroups"][0]["tests"][1];
    case["result"] = "invalid".into();
    case["error"] = "expired".into();
    case.as_object_mut().unwrap().remove("bundle");
    changed.push(boundary);
    for json in changed {
        assert!(e2ee_backup_vectors::verify(&json).is_err());
    }
}

/// A snapshot reader or writer that drifts from spec chapter 8 fails a case: each change to an
/// expected value or error below is caught.
#[test]
fn snapshot_cases_catch_a_changed_expectation() {
    let path = vectors_dir().join("snapshot.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(e2ee_backup_vectors::verify(&json).unwrap(), 44);
    let flip = |text: &Value| {
        let mut text = text.as_str().unwrap().to_owned();
        let last = if text.ends_with('0') { "1" } else { "0" };
        text.replace_range(text.len() - 1.., last);
        Value::from(text)
    };
    let mut changed = Vec::new();
    for (group, field) in [(0, "manifestKey"), (0, "chunkingSeed"), (1, "name"), (2, "encoding")] {
        let mut json = json.clone();
        let case = &mut json["testGroups"][group]["tests"][0];
        case[field] = flip(&case[field]);
        changed.push(json);
    }
    // A valid manifest whose structure says another mode than its bytes.
    let mut mode = json.clone();
    mode["testGroups"][2]["tests"][0]["manifest"]["entries"][0]["mode"] = 0o700.into();
    changed.push(mode);
    // The climbing path answered with another word.
    let mut word = json.clone();
    let case = word["testGroups"][2]["tests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["comment"] == "a path that climbs out: ../x")
        .unwrap();
    case["error"] = "invalid-value".into();
    changed.push(word);
    // A blob's content, a renamed blob's error, a manifest's cause, each changed.
    for (group, index, field, value) in [
        (3, 0, "content", None),
        (3, 1, "error", Some("blob-content-mismatch")),
        (4, 2, "cause", Some("chunk-modified")),
    ] {
        let mut json = json.clone();
        let case = &mut json["testGroups"][group]["tests"][index];
        case[field] = value.map_or_else(|| flip(&case[field]), Value::from);
        changed.push(json);
    }
    for json in changed {
        assert!(e2ee_backup_vectors::verify(&json).is_err());
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

#[test]
fn a_changed_vault_vector_is_caught() {
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("vault.json")).unwrap())
            .unwrap();
    assert_eq!(e2ee_backup_vectors::verify(&original), Ok(105));
    let flip = |hex: &Value| -> Value {
        let mut bytes = hex::decode(hex.as_str().unwrap()).unwrap();
        bytes[0] ^= 1;
        hex::encode(bytes).into()
    };
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut changed = |what: &'static str, edit: &dyn Fn(&mut Value)| {
        let mut json = original.clone();
        edit(&mut json);
        cases.push((what, json));
    };
    // A recorded draw (the client's blind of the first registration).
    changed("draw value", &|j| {
        let d = &mut j["testGroups"][0]["tests"][0]["inputs"]["draws"][5]["value"];
        *d = flip(d);
    });
    // A draw renamed, and a draw dropped: the replay no longer lines up.
    changed("draw name", &|j| {
        j["testGroups"][0]["tests"][0]["inputs"]["draws"][7]["name"] =
            "hsm.register_finish.draw[0]".into();
    });
    changed("draw dropped", &|j| {
        j["testGroups"][0]["tests"][0]["inputs"]["draws"].as_array_mut().unwrap().pop();
    });
    // An output byte: a response, and the stored record after the lockout.
    changed("response", &|j| {
        let r = &mut j["testGroups"][0]["tests"][0]["outputs"]["exchanges"][1]["response"];
        *r = flip(r);
    });
    changed("locked record", &|j| {
        let r = &mut j["testGroups"][0]["tests"][2]["outputs"]["exchanges"][4]["record"];
        *r = flip(r);
    });
    changed("recovered K", &|j| {
        let k = &mut j["testGroups"][0]["tests"][0]["outputs"]["client"][1]["recoveredKey"];
        *k = flip(k);
    });
    changed("password", &|j| {
        let p = &mut j["testGroups"][0]["tests"][0]["inputs"]["password"];
        *p = flip(p);
    });
    // An invalid case's expected error, and its result.
    changed("tamper error", &|j| {
        j["testGroups"][1]["tests"][0]["error"] = "request-does-not-open".into();
    });
    changed("replayed KE3 accepted", &|j| {
        let t = &mut j["testGroups"][1]["tests"][7];
        t["result"] = "valid".into();
        t.as_object_mut().unwrap().remove("error");
    });
    changed("expired registration ticket accepted", &|j| {
        let t = &mut j["testGroups"][1]["tests"][10];
        t["result"] = "valid".into();
        t.as_object_mut().unwrap().remove("error");
    });
    changed("re-registration without a token accepted", &|j| {
        j["testGroups"][1]["tests"][12]["error"] = "stale-registration".into();
    });
    changed("channel response", &|j| {
        let r = &mut j["testGroups"][2]["tests"][0]["outputs"]["response"];
        *r = flip(r);
    });
    for (what, json) in cases {
        assert!(e2ee_backup_vectors::verify(&json).is_err(), "{what}: a changed vector verifies");
    }
}

/// The later vault groups (tcIds 27 to 95), one case at a time: a locked account's undecodable
/// request answered as locked, an expired login ticket's refusal without the record's
/// remaining, an envelope bound's error taken for a tag failure, a record decoder that reads
/// pending attempts before it checks their count, a secrets decoder that reads a key before it
/// checks its id.
#[test]
fn a_changed_later_vault_case_is_caught() {
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("vault.json")).unwrap())
            .unwrap();
    let case = |group: usize, index: usize, scenario: &str| -> Value {
        let t = original["testGroups"][group]["tests"][index].clone();
        assert_eq!(t["scenario"], scenario);
        e2ee_backup_vectors::vault::verify_case(&t).unwrap();
        t
    };
    let mut locked = case(4, 5, "locked-undecodable");
    locked["error"] = "locked".into();
    let mut expired = case(4, 7, "expired-login-ticket");
    let last = expired["outputs"]["client"].as_array_mut().unwrap().last_mut().unwrap();
    last["outcome"] = "refused session-invalid remaining=0".into();
    let mut bound = case(5, 1, "channel");
    bound["error"] = "request-does-not-open".into();
    // A record whose pending_count is above its budget, answered as if the attempts were read.
    let mut record = case(6, 18, "record");
    record["error"] = "truncated".into();
    // Fleet secrets whose repeated key id is followed by nothing, answered as truncated.
    let mut secrets = case(7, 10, "secrets");
    secrets["error"] = "truncated".into();
    for (what, t) in [
        ("locked", locked),
        ("expired", expired),
        ("bound", bound),
        ("record", record),
        ("secrets", secrets),
    ] {
        assert!(
            e2ee_backup_vectors::vault::verify_case(&t).is_err(),
            "{what}: a changed case verifies"
        );
    }
}

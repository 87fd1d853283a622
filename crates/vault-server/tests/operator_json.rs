//! `e2ee-backup-vault --json` for the commands an operator scripts (issue 11): `init`, `bundle`
//! and `member` print one JSON object; a failure carries `code`, `message` and `retryable`; a
//! usage error is JSON too (code `usage`, exit 2).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_e2ee-backup-vault");

/// Runs the binary; its exit code and its standard output read as one JSON object.
fn json(args: &[&str]) -> (i32, Value) {
    let output = Command::new(BIN).args(args).output().expect("the binary runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON object ({e}): {stdout:?}"));
    (output.status.code().expect("an exit code"), value)
}

#[test]
fn operator_commands_answer_in_json() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("vault");
    let data = data.to_str().expect("UTF-8 path");

    let (code, init) =
        json(&["init", "--json", "--data-dir", data, "--fleet-id", "json.fleet", "--ksf", "fast"]);
    assert_eq!((code, &init["ok"]), (0, &Value::Bool(true)), "{init}");
    assert_eq!(init["fleetId"], "json.fleet");
    assert_eq!(init["ksf"], "fast");
    assert!(init["pin"].as_str().unwrap().contains("fleet_id = json.fleet"), "{init}");
    assert!(init["files"].as_array().unwrap().len() >= 5, "{init}");

    let (code, bundle) = json(&["--json", "bundle", "--data-dir", data, "--days", "7"]);
    assert_eq!((code, &bundle["ok"], &bundle["epoch"]), (0, &Value::Bool(true), &2.into()));

    // A failure: init over an existing directory without --force.
    let (code, again) = json(&["init", "--json", "--data-dir", data, "--fleet-id", "json.fleet"]);
    assert_eq!((code, &again["ok"]), (1, &Value::Bool(false)), "{again}");
    assert_eq!(again["error"]["code"], "init-failed");
    assert_eq!(again["error"]["retryable"], false);
    assert!(!again["error"]["message"].as_str().unwrap().is_empty());

    // A single vault's directory is no replica to add.
    let (code, add) =
        json(&["member", "add", "--json", "--data-dir", data, "--via", "127.0.0.1:9"]);
    assert_eq!((code, &add["ok"]), (1, &Value::Bool(false)), "{add}");
    assert_eq!(add["error"]["code"], "member-change-failed", "{add}");
    assert_eq!(add["error"]["retryable"], false, "{add}");

    let (code, usage) = json(&["--json", "init", "--no-such-flag"]);
    assert_eq!((code, &usage["error"]["code"]), (2, &Value::from("usage")), "{usage}");
    assert_eq!(usage["error"]["retryable"], false);
}

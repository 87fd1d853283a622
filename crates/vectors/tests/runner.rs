//! `e2ee-backup-vectors run` against the reference adapter (every case passes) and against
//! adapters that answer wrongly, crash, print garbage, hang or flood (those cases fail, are
//! named, and the runner goes on).

use std::path::PathBuf;
use std::process::{Command, Output};

use e2ee_backup_vectors::adapter::FAULT_ENV;

const BIN: &str = env!("CARGO_BIN_EXE_e2ee-backup-vectors");

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors")
}

/// The reference adapter's command line, quoted for the shell.
fn reference_adapter() -> String {
    format!("'{BIN}' adapter")
}

fn run(args: &[&str], fault: Option<&str>) -> (Output, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("run").args(args).arg(vectors_dir());
    match fault {
        Some(fault) => cmd.env(FAULT_ENV, fault),
        None => cmd.env_remove(FAULT_ENV),
    };
    let output = cmd.output().expect("the runner starts");
    let stdout = String::from_utf8(output.stdout.clone()).expect("UTF-8 output");
    (output, stdout)
}

#[test]
fn the_reference_adapter_passes_every_stateless_case() {
    let (output, stdout) = run(&["--adapter", &reference_adapter()], None);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for summary in [
        "key-encoding: 22 passed, 0 failed",
        "key-schedule: 8 passed, 0 failed",
        "fleet-bundle: 44 passed, 0 failed",
        "backup-format: 82 passed, 0 failed",
        "crypt15: 115 passed, 0 failed",
        "snapshot: 44 passed, 0 failed",
        "total: 315 passed, 0 failed",
    ] {
        assert!(stdout.contains(summary), "no {summary:?} in\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("PASS crypt15/53 "), "{stdout}");
}

#[test]
fn one_wrong_answer_fails_the_run_and_names_the_vector() {
    // A rejected key file answered as accepted, and a valid fleet bundle answered as rejected.
    let (output, stdout) = run(
        &["--adapter", &reference_adapter(), "--only", "fleet-bundle,crypt15"],
        Some("wrong:crypt15/53,wrong:fleet-bundle/1"),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL crypt15/53 "), "{stdout}");
    assert!(stdout.contains("expected error \"wrong-length\", got ok"), "{stdout}");
    assert!(stdout.contains("FAIL fleet-bundle/1 "), "{stdout}");
    assert!(stdout.contains("fleet-bundle: 43 passed, 1 failed"), "{stdout}");
    assert!(stdout.contains("crypt15: 114 passed, 1 failed"), "{stdout}");
    assert!(stdout.contains("failed: fleet-bundle/1 crypt15/53"), "{stdout}");
    // Only the families asked for ran.
    assert!(!stdout.contains("key-encoding"), "{stdout}");
    assert_eq!(stdout.matches("FAIL").count(), 2, "{stdout}");
}

#[test]
fn a_crash_garbage_a_hang_or_a_flood_fails_only_its_case() {
    let faults =
        "crash:key-encoding/5,garbage:key-encoding/7,hang:key-encoding/9,long:key-encoding/11";
    let (output, stdout) = run(
        &[
            "--adapter",
            &reference_adapter(),
            "--only",
            "key-encoding",
            "--timeout",
            "2",
            "--max-answer",
            "4096",
        ],
        Some(faults),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for (id, why) in [
        ("key-encoding/5", "closed its output without answering"),
        ("key-encoding/7", "the answer is not JSON"),
        ("key-encoding/9", "no answer within 2000 ms"),
        ("key-encoding/11", "longer than 4096 bytes"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("FAIL {id} ")))
            .unwrap_or_else(|| panic!("{id} did not fail:\n{stdout}"));
        assert!(line.contains(why), "{line}");
    }
    // The adapter was restarted after each fault and answered every other case.
    assert!(stdout.contains("key-encoding: 18 passed, 4 failed"), "{stdout}");
}

#[test]
fn an_adapter_that_answers_nothing_fails_every_case() {
    let (output, stdout) = run(&["--adapter", "exit 0", "--only", "key-schedule"], None);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("key-schedule: 0 passed, 8 failed"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn a_script_adapter_that_always_says_wrong_length_passes_only_its_cases() {
    // A tiny shell adapter: every request gets the same error, with no details.
    let script = r#"while read -r line; do echo '{"error":"wrong-length","found":0}'; done"#;
    let (output, stdout) = run(&["--adapter", script, "--only", "key-encoding"], None);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    // "empty" and "separators only" are the cases whose expected answer this is.
    assert!(stdout.contains("PASS key-encoding/20 empty"), "{stdout}");
    assert!(stdout.contains("PASS key-encoding/21 separators only"), "{stdout}");
    assert!(
        stdout.contains(
            "FAIL key-encoding/18 one digit short: error \"wrong-length\": found expected 63, got 0"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("key-encoding: 2 passed, 20 failed"), "{stdout}");
}

#[test]
fn stateful_and_unknown_families_are_refused() {
    for only in ["vault", "replication", "key-encodings"] {
        let (output, _) = run(&["--adapter", "exit 0", "--only", only], None);
        assert_eq!(output.status.code(), Some(2), "--only {only}");
    }
    let (output, _) = run(&["--only", "crypt15"], None);
    assert_eq!(output.status.code(), Some(2), "no --adapter");
}

#[test]
fn requests_carry_the_op_the_id_and_the_inputs() {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(vectors_dir().join("key-encoding.json")).unwrap(),
    )
    .unwrap();
    let cases = e2ee_backup_vectors::runner::cases("key-encoding", &json).unwrap();
    assert_eq!(cases.len(), 22);
    let request = &cases[8].request;
    assert_eq!(request["op"], "key-parse");
    assert_eq!(request["id"], "key-encoding/9");
    assert!(request["input"].as_str().unwrap().contains('g'));
    let answer = e2ee_backup_vectors::adapter::answer(request);
    assert_eq!(answer, serde_json::json!({ "error": "invalid-character", "position": 10 }));
    e2ee_backup_vectors::runner::judge(&answer, &cases[8].expected).unwrap();
}

/// The examples of the protocol in `test-vectors/README.md` are what the reference adapter
/// answers, the requests are the runner's own, and every op has one.
#[test]
fn the_protocol_examples_are_real_exchanges() {
    use serde_json::Value;
    let guide = std::fs::read_to_string(vectors_dir().join("README.md")).unwrap();
    let mut ops = std::collections::BTreeSet::new();
    for block in guide.split("```json\n").skip(1) {
        let block = block.split("```").next().unwrap();
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines.len(), 2, "an example is a request line and an answer line: {block}");
        let request: Value = serde_json::from_str(lines[0]).unwrap();
        let answer: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(e2ee_backup_vectors::adapter::answer(&request), answer, "{}", lines[0]);
        let id = request["id"].as_str().unwrap();
        let family = id.split('/').next().unwrap();
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(vectors_dir().join(format!("{family}.json"))).unwrap(),
        )
        .unwrap();
        let case = e2ee_backup_vectors::runner::cases(family, &json)
            .unwrap()
            .into_iter()
            .find(|c| c.id == id)
            .unwrap();
        assert_eq!(case.request, request, "{id}");
        e2ee_backup_vectors::runner::judge(&answer, &case.expected).unwrap();
        ops.insert(request["op"].as_str().unwrap().to_owned());
    }
    let all = [
        "key-parse",
        "file-keys",
        "vault-wrapping-key",
        "fleet-bundle-verify",
        "backup-decrypt",
        "crypt15-decrypt",
        "crypt15-key-file",
    ];
    assert_eq!(ops, all.iter().map(|s| s.to_string()).collect());
}

#[test]
fn answers_are_judged_field_by_field() {
    use e2ee_backup_vectors::runner::{Expected, judge};
    use serde_json::json;
    let ok = Expected::Ok(json!({ "key": "00", "n": 1 }).as_object().unwrap().clone());
    judge(&json!({ "ok": { "key": "00", "n": 1, "extra": true } }), &ok).unwrap();
    for (answer, why) in [
        (json!({ "ok": { "key": "00" } }), "ok.n is missing"),
        (json!({ "ok": { "key": "00", "n": "1" } }), "ok.n: expected 1, got \"1\""),
        (json!({ "ok": { "key": "00", "n": 1 }, "error": "x" }), "both ok and error"),
        (json!({ "error": "truncated" }), "expected ok, got error \"truncated\""),
        (json!({}), "neither ok nor error"),
        (json!([1]), "not a JSON object"),
    ] {
        let err = judge(&answer, &ok).unwrap_err();
        assert!(err.contains(why), "{answer}: {err}");
    }
    let error = Expected::Error {
        code: "wrong-header".into(),
        details: json!({ "offset": 3 }).as_object().unwrap().clone(),
    };
    judge(&json!({ "error": "wrong-header", "offset": 3, "message": "hi" }), &error).unwrap();
    for (answer, why) in [
        (json!({ "error": "wrong-header" }), "offset expected 3, got nothing"),
        (json!({ "error": "wrong-header", "offset": 4 }), "offset expected 3, got 4"),
        (json!({ "error": "wrong-length", "offset": 3 }), "got error \"wrong-length\""),
        (json!({ "ok": {} }), "expected error \"wrong-header\", got ok"),
    ] {
        let err = judge(&answer, &error).unwrap_err();
        assert!(err.contains(why), "{answer}: {err}");
    }
}

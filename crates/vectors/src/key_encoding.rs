//! Vectors for the 64-digit key (spec section 2.2): `test-vectors/key-encoding.json`.

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::digits::{self, KeyParseError};
use serde_json::{Value, json};

use crate::{draw32, envelope, expect_eq, number};

/// The `algorithm` of the file.
pub const ALGORITHM: &str = "e2ee-backups 64-digit key";

const NOTES: &[(&str, &str)] = &[
    ("Canonical", "The display form: 16 groups of 4 lowercase digits separated by one space."),
    ("NoSeparators", "64 digits with nothing between them."),
    ("UpperCase", "Upper-case hexadecimal digits, which parsers accept."),
    ("Separators", "Dashes, line feeds or carriage returns between digits, which parsers ignore."),
    (
        "InvalidCharacter",
        "A character that is neither a hex digit nor an accepted separator; the error names its zero-based character position.",
    ),
    ("WrongLength", "Not 64 hex digits; the error names how many were found."),
];

/// Builds the vector file.
pub fn generate() -> Value {
    let key = BackupKey::from_bytes(draw32("key-encoding/key"));
    let display = digits::to_display(&key).to_string();
    let hex = digits::to_hex(&key).to_string();
    let valid = |comment: &str, flags: &[&str], key: &BackupKey, input: String| {
        json!({
            "comment": comment, "flags": flags, "result": "valid",
            "input": input, "key": *digits::to_hex(key), "display": *digits::to_display(key),
        })
    };
    let grouped = |sep: &str| {
        hex.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join(sep)
    };
    let zero = BackupKey::from_bytes([0; 32]);
    let ones = BackupKey::from_bytes([0xff; 32]);
    let valid_tests = vec![
        valid("display form", &["Canonical"], &key, display.clone()),
        valid("plain digits", &["NoSeparators"], &key, hex.clone()),
        valid("upper case", &["UpperCase", "NoSeparators"], &key, hex.to_uppercase()),
        valid("dashes between groups", &["Separators"], &key, grouped("-")),
        valid("one group per line, CRLF", &["Separators"], &key, grouped("\r\n")),
        valid(
            "mixed separators and case",
            &["Separators", "UpperCase"],
            &key,
            format!("{}\n{}", &grouped(" -")[..40].to_uppercase(), &grouped(" -")[40..]),
        ),
        valid("all-zero key", &["Canonical"], &zero, digits::to_display(&zero).to_string()),
        valid(
            "all-ones key",
            &["UpperCase", "NoSeparators"],
            &ones,
            digits::to_hex(&ones).to_uppercase(),
        ),
    ];
    let invalid_inputs: Vec<(&str, &str, String)> = vec![
        ("letter past f", "InvalidCharacter", format!("{}g{}", &display[..10], &display[11..])),
        ("tab is not a separator", "InvalidCharacter", display.replacen(' ', "\t", 1)),
        ("non-ASCII character counts as one position", "InvalidCharacter", format!("é{hex}")),
        ("0x prefix", "InvalidCharacter", format!("0x{hex}")),
        (
            "fullwidth digit (U+FF11) is not an ASCII digit",
            "InvalidCharacter",
            format!("{}\u{ff11}{}", &hex[..5], &hex[6..]),
        ),
        (
            "Arabic-Indic digit (U+0663) is not an ASCII digit",
            "InvalidCharacter",
            format!("{}\u{663}{}", &hex[..5], &hex[6..]),
        ),
        (
            "no-break space (U+00A0) is not a separator",
            "InvalidCharacter",
            display.replacen(' ', "\u{a0}", 1),
        ),
        ("underscore separator", "InvalidCharacter", grouped("_")),
        ("bad character wins over wrong length", "InvalidCharacter", "12 34 zz".to_owned()),
        ("one digit short", "WrongLength", hex[1..].to_owned()),
        ("one digit long", "WrongLength", format!("{hex}0")),
        ("empty", "WrongLength", String::new()),
        ("separators only", "WrongLength", " - \n".to_owned()),
        ("the 32-byte key as 128 digits", "WrongLength", format!("{hex}{hex}")),
    ];
    let invalid_tests: Vec<Value> = invalid_inputs
        .into_iter()
        .map(|(comment, flag, input)| {
            let error = error_json(&digits::parse(&input).expect_err("invalid vector input parsed"));
            json!({ "comment": comment, "flags": [flag], "result": "invalid", "input": input, "error": error })
        })
        .collect();
    let mut groups = vec![
        json!({ "type": "KeyEncodingValid", "tests": valid_tests }),
        json!({ "type": "KeyEncodingInvalid", "tests": invalid_tests }),
    ];
    number(&mut groups);
    envelope(
        ALGORITHM,
        &["The 64-digit form of the backup key K and its parsing (spec section 2.2)."],
        NOTES,
        groups,
    )
}

fn error_json(err: &KeyParseError) -> Value {
    match err {
        KeyParseError::InvalidCharacter { position, character } => {
            json!({ "code": "invalid-character", "position": position, "character": character.to_string() })
        }
        KeyParseError::WrongLength { found } => json!({ "code": "wrong-length", "found": found }),
    }
}

/// Checks one case.
pub fn verify_case(case: &Value) -> Result<(), String> {
    let input = case["input"].as_str().ok_or("missing input")?;
    match (case["result"].as_str(), digits::parse(input)) {
        (Some("valid"), Ok(key)) => {
            expect_eq(
                "key",
                digits::to_hex(&key).as_str(),
                case["key"].as_str().unwrap_or_default(),
            )?;
            expect_eq(
                "display",
                digits::to_display(&key).as_str(),
                case["display"].as_str().unwrap_or_default(),
            )
        }
        (Some("invalid"), Err(err)) => expect_eq("error", error_json(&err), case["error"].clone()),
        (result, outcome) => {
            Err(format!("result {result:?} but parse gave {:?}", outcome.map(|_| "a key")))
        }
    }
}

//! Every program has its man page, with the sections STYLE §4 asks for, in order, and every
//! exit code that mailorder-core's tables give it appears in its EXIT CODES section.

use std::path::Path;

const SECTIONS: [&str; 10] = [
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "FILE DESCRIPTORS",
    "ENVIRONMENT",
    "CONTROL FILES",
    "OUTPUT FORMAT",
    "EXIT CODES",
    "SECURITY",
    "SEE ALSO",
];

/// Exit codes each program documents (from mailorder_core::exit and the contracts' own
/// promises); a code the program can return but does not document fails here.
const CODES: &[(&str, &[u8])] = &[
    (
        "queue",
        &[0, 11, 51, 52, 53, 54, 55, 61, 62, 64, 65, 66, 81, 91],
    ),
    ("local-deliver", &[0, 99, 100, 111]),
    ("checkpassword-file", &[1, 2, 111]),
    ("sendmail", &[0, 64, 65, 75]),
    ("deliver-as", &[111]),
    ("listen", &[100, 111]),
    ("runas", &[100, 111]),
    ("setup", &[0, 100, 111]),
    ("qadmin", &[0, 1, 100, 111]),
    ("useradm", &[0, 100, 111]),
    ("remote-send", &[0, 100]),
    ("checkpassword-ldap", &[1, 2, 111]),
];

#[test]
fn every_program_has_a_complete_contract() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut checked = 0;
    for e in std::fs::read_dir(&crates).unwrap().filter_map(Result::ok) {
        let dir = e.path();
        if !dir.join("src/main.rs").exists() {
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        let text = std::fs::read_to_string(dir.join("CONTRACT.md"))
            .unwrap_or_else(|_| panic!("{name} has no CONTRACT.md"));
        let mut pos = 0;
        for s in SECTIONS {
            let at = text[pos..]
                .find(&format!("## {s}"))
                .unwrap_or_else(|| panic!("{name}: section {s} missing or out of order"));
            pos += at + 3;
        }
        let exit = &text[text.find("## EXIT CODES").unwrap()..text.find("## SECURITY").unwrap()];
        if let Some((_, codes)) = CODES.iter().find(|(n, _)| *n == name) {
            for c in *codes {
                assert!(
                    exit.split(|ch: char| !ch.is_ascii_digit())
                        .any(|w| w == c.to_string()),
                    "{name}: exit code {c} not documented"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} programs found");
}

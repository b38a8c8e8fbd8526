//! Every program has its man page, with the sections below (NAME … SEE ALSO), in order, and every
//! exit code its crate declares (`EXIT_CODES`, from mailorder-core's table) appears in its
//! EXIT CODES section.

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

/// Each program's exit codes, as its own crate declares them (`EXIT_CODES`, built from
/// mailorder-core's exit table). A program missing here fails the test.
const CODES: &[(&str, &[u8])] = &[
    (
        "checkpassword-file",
        mailorder_checkpassword_file::EXIT_CODES,
    ),
    (
        "checkpassword-ldap",
        mailorder_checkpassword_ldap::EXIT_CODES,
    ),
    ("deliver-as", mailorder_deliver_as::EXIT_CODES),
    ("dkimkey", mailorder_dkimkey::EXIT_CODES),
    ("dispatch", mailorder_dispatch::EXIT_CODES),
    ("filter", mailorder_filter::EXIT_CODES),
    ("imapd-login", mailorder_imapd_login::EXIT_CODES),
    ("imapd", mailorder_imapd::EXIT_CODES),
    ("listen", mailorder_listen::EXIT_CODES),
    ("local-deliver", mailorder_local_deliver::EXIT_CODES),
    ("mailmove", mailorder_mailmove::EXIT_CODES),
    ("pop3d-login", mailorder_pop3d_login::EXIT_CODES),
    ("pop3d", mailorder_pop3d::EXIT_CODES),
    ("qadmin", mailorder_qadmin::EXIT_CODES),
    ("queue-clean", mailorder_queue_clean::EXIT_CODES),
    ("queue", mailorder_queue::EXIT_CODES),
    ("remote-send", mailorder_remote_send::EXIT_CODES),
    ("sendmail", mailorder_sendmail::EXIT_CODES),
    ("runas", mailorder_runas::EXIT_CODES),
    ("setup", mailorder_setup::EXIT_CODES),
    ("smtpd", mailorder_smtpd::EXIT_CODES),
    ("tlswrap", mailorder_tlswrap::EXIT_CODES),
    ("useradm", mailorder_useradm::EXIT_CODES),
    ("webd", mailorder_webd::EXIT_CODES),
    ("webd-dirwrite", mailorder_webd_dirwrite::EXIT_CODES),
    ("webd-queue", mailorder_webd_queue::EXIT_CODES),
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
        let (_, codes) = CODES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name}: add its EXIT_CODES to CODES"));
        for c in *codes {
            assert!(
                exit.split(|ch: char| !ch.is_ascii_digit())
                    .any(|w| w == c.to_string()),
                "{name}: exit code {c} not documented in its CONTRACT.md"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, CODES.len(), "programs found vs programs listed");
}

/// Every library crate (no `main.rs`) documents its public items: its lib.rs turns on
/// `missing_docs`, which clippy's `-D warnings` makes an error.
#[test]
fn every_library_warns_on_missing_docs() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut libraries = 0;
    for e in std::fs::read_dir(&crates).unwrap().filter_map(Result::ok) {
        let dir = e.path();
        if dir.join("src/main.rs").exists() || !dir.join("src/lib.rs").exists() {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(
            text.contains("#![warn(missing_docs)]"),
            "{}: a library crate's lib.rs says #![warn(missing_docs)]",
            dir.display()
        );
        libraries += 1;
    }
    assert!(libraries >= 10, "only {libraries} library crates found");
}

//! Each program links only the directory back-ends it uses (issue 17): read from the
//! committed Cargo.lock (the exact dependency graph cargo builds), no cargo run needed.
//!
//! - set-uid root checkpassword-file: no LDAP client (ldap3, and tokio with it), no admin
//!   writer;
//! - smtpd, dispatch, local-deliver (resolve recipients): no password hashing (argon2,
//!   sha-crypt) and no admin writer;
//! - checkpassword-ldap: no admin writer.

use std::collections::{BTreeMap, BTreeSet};

/// package name → names of its dependencies, from Cargo.lock.
fn graph() -> BTreeMap<String, Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    let text = std::fs::read_to_string(path).expect("Cargo.lock");
    let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for block in text.split("[[package]]").skip(1) {
        let mut name = None;
        let mut deps = Vec::new();
        let mut in_deps = false;
        for line in block.lines() {
            let line = line.trim();
            if let Some(n) = line.strip_prefix("name = ") {
                name = Some(n.trim_matches('"').to_owned());
            } else if line.starts_with("dependencies = [") {
                in_deps = true;
            } else if in_deps && line.starts_with(']') {
                in_deps = false;
            } else if in_deps {
                // `"name"` or `"name version"`.
                let d = line.trim_end_matches(',').trim_matches('"');
                deps.push(d.split(' ').next().unwrap_or_default().to_owned());
            }
        }
        if let Some(n) = name {
            g.entry(n).or_default().extend(deps);
        }
    }
    g
}

/// Every package `root` depends on, directly or not.
fn closure(g: &BTreeMap<String, Vec<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        for d in g.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

// See: issue #17
#[test]
fn programs_link_only_the_directory_back_ends_they_use() {
    let g = graph();
    let check = |program: &str, banned: &[&str], needed: &[&str]| {
        assert!(g.contains_key(program), "{program} not in Cargo.lock");
        let deps = closure(&g, program);
        for b in banned {
            assert!(!deps.contains(*b), "{program} links {b}");
        }
        for n in needed {
            assert!(deps.contains(*n), "{program} should link {n}");
        }
    };
    check(
        "mailorder-checkpassword-file",
        &[
            "ldap3",
            "tokio",
            "mailorder-directory-ldap",
            "mailorder-directory-admin",
        ],
        &["mailorder-directory-file", "mailorder-directory-hash"],
    );
    for p in [
        "mailorder-smtpd",
        "mailorder-dispatch",
        "mailorder-local-deliver",
    ] {
        check(
            p,
            &[
                "argon2",
                "sha-crypt",
                "mailorder-directory-hash",
                "mailorder-directory-admin",
            ],
            &["mailorder-directory-file", "mailorder-directory-ldap"],
        );
    }
    check(
        "mailorder-checkpassword-ldap",
        &["mailorder-directory-admin"],
        &["mailorder-directory-ldap", "mailorder-directory-hash"],
    );
}

// See: issue #17 (a library named like a program: local-deliver's was `local_deliver`)
/// Every crate's package is `mailorder-<directory>` and its library, when it names one, is
/// that name too (docs/ARCHITECTURE.md "Crates and their names"), so `use mailorder_…`
/// always tells a reader it is one of ours.
#[test]
fn crates_and_their_libraries_carry_the_prefix() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut seen = 0;
    for e in std::fs::read_dir(&crates).unwrap().filter_map(Result::ok) {
        let Ok(text) = std::fs::read_to_string(e.path().join("Cargo.toml")) else {
            continue;
        };
        let dir = e.file_name().to_string_lossy().to_string();
        let package = format!("mailorder-{dir}");
        let mut section = "";
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if let Some(v) = line.strip_prefix("name = ") {
                let v = v.trim_matches('"');
                match section {
                    "[package]" => assert_eq!(v, package, "crates/{dir}: package name"),
                    "[lib]" => assert_eq!(
                        v,
                        package.replace('-', "_"),
                        "crates/{dir}: the library keeps the package's name"
                    ),
                    _ => {}
                }
            }
        }
        seen += 1;
    }
    assert!(seen >= 30, "only {seen} crates found");
}

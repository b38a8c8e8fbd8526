//! A private Postfix (PEERS.md) for the tests that need a real MTA on the other side:
//! its own `main.cf`/`master.cf` in a scratch directory, smtpd on one loopback port,
//! virtual mailboxes under `postfix/vmail` owned by `nobody`, no DNS. Stopped when dropped.

use crate::{wait_for, wait_port};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What differs between the tests' Postfix instances.
#[derive(Debug, Clone, Default)]
pub struct PostfixConf {
    /// `myhostname` (also the banner's first word).
    pub hostname: String,
    /// The one `virtual_mailbox_domains` entry.
    pub domain: String,
    /// `virtual_mailbox_maps` lines: `ADDRESS box/Maildir/` (`@domain` for every address),
    /// so [`Postfix::delivered`] finds the mail in `vmail/box/Maildir/new`.
    pub vmaps: String,
    /// More `main.cf` lines, e.g. `smtpd_reject_unlisted_recipient = no`.
    pub main_extra: String,
    /// `transport_maps` lines (`example.test smtp:[127.0.0.1]:PORT`); empty: none.
    pub transport: String,
}

/// A running private Postfix.
pub struct Postfix {
    dir: PathBuf,
}

impl Postfix {
    /// Lay out `dir/postfix` and start Postfix with smtpd on 127.0.0.1:`port`; waits until
    /// it listens. Needs root (Postfix's master runs as root and drops to `postfix`).
    pub fn start(dir: &Path, port: u16, conf: &PostfixConf) -> Postfix {
        let pdir = dir.join("postfix");
        for d in ["etc", "queue", "data", "vmail"] {
            std::fs::create_dir_all(pdir.join(d)).expect("postfix directories");
        }
        let etc = pdir.join("etc");
        let master = std::fs::read_to_string("/etc/postfix/master.cf").expect("master.cf");
        let master: String = master
            .lines()
            .map(|l| {
                if l.starts_with("smtp ") && l.contains("inet") {
                    format!("127.0.0.1:{port} inet n - n - - smtpd")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(etc.join("master.cf"), master + "\n").expect("master.cf");
        let (uid, _) = crate::tree_user().unwrap_or((65534, 65534));
        std::fs::write(etc.join("vmaps"), &conf.vmaps).expect("vmaps");
        let mut main = format!(
            "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {d}\n\
             inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmaillog_file = {p}/maillog\n\
             maillog_file_prefixes = {p}\nmyhostname = {h}\nmydestination =\n\
             virtual_mailbox_domains = {domain}\nvirtual_mailbox_base = {v}\n\
             virtual_mailbox_maps = texthash:{e}/vmaps\nvirtual_uid_maps = static:{uid}\n\
             virtual_gid_maps = static:65534\nsmtpd_banner = {h} ESMTP\n\
             mynetworks = 127.0.0.0/8\nsmtp_dns_support_level = disabled\n",
            q = pdir.join("queue").display(),
            d = pdir.join("data").display(),
            p = pdir.display(),
            h = conf.hostname,
            domain = conf.domain,
            v = pdir.join("vmail").display(),
            e = etc.display(),
        );
        if !conf.transport.is_empty() {
            std::fs::write(etc.join("transport"), &conf.transport).expect("transport");
            main.push_str(&format!(
                "transport_maps = texthash:{}/transport\n",
                etc.display()
            ));
        }
        main.push_str(&conf.main_extra);
        std::fs::write(etc.join("main.cf"), main).expect("main.cf");
        let chown = |p: &Path, who: &str| {
            let _ = Command::new("chown").arg("-R").arg(who).arg(p).status();
        };
        chown(&pdir.join("data"), "postfix");
        chown(&pdir.join("vmail"), "nobody");
        let _ = Command::new("postconf")
            .arg("-c")
            .arg(&etc)
            .args(["-F", "*/*/chroot = n"])
            .status();
        let o = Command::new("postfix")
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .output()
            .expect("postfix");
        assert!(
            o.status.success(),
            "postfix start: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let p = Postfix { dir: pdir };
        wait_port(port);
        p
    }

    /// Stop it and wait until its master process is gone.
    pub fn stop(&self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.dir.join("etc"))
            .arg("stop")
            .output();
        let pid = self.dir.join("queue/pid/master.pid");
        wait_for("postfix to stop", 20, || {
            std::fs::read_to_string(&pid).map_or(true, |p| {
                !Path::new(&format!("/proc/{}", p.trim())).exists()
            })
        });
    }

    /// The messages in `vmail/box/Maildir/new`.
    pub fn delivered(&self) -> Vec<String> {
        let new = self.dir.join("vmail/box/Maildir/new");
        std::fs::read_dir(new)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

//! Folder names: the source's (its separator, its personal namespace prefix, modified
//! UTF-7) to ours (`/`-separated modified UTF-7, special folders named Sent, Drafts,
//! Trash, Junk, Archive).

use mailorder_imap_proto::mutf7;

/// One source folder as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The name as the server spells it (to EXAMINE it).
    pub name: String,
    /// Its hierarchy separator, if any.
    pub sep: Option<char>,
    /// Its attributes (`\Noselect`, `\Sent`…), as sent.
    pub attrs: Vec<String>,
}

impl Source {
    /// Whether it holds messages.
    pub fn selectable(&self) -> bool {
        !self.attrs.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        })
    }
}

/// Our special folders, their attributes and the names other servers and clients give them.
const USUAL: [(&str, &str, &[&str]); 5] = [
    (
        "Sent",
        "\\Sent",
        &[
            "sent",
            "sent items",
            "sent messages",
            "sent mail",
            "gesendet",
            "gesendete objekte",
            "gesendete elemente",
            "envoyés",
            "éléments envoyés",
            "messages envoyés",
            "enviados",
            "elementos enviados",
            "inviati",
            "posta inviata",
            "verzonden",
            "verzonden items",
            "skickat",
            "wysłane",
        ],
    ),
    (
        "Drafts",
        "\\Drafts",
        &[
            "drafts",
            "draft",
            "entwürfe",
            "brouillons",
            "borradores",
            "bozze",
            "concepten",
            "utkast",
            "kopie robocze",
        ],
    ),
    (
        "Trash",
        "\\Trash",
        &[
            "trash",
            "deleted items",
            "deleted messages",
            "bin",
            "papierkorb",
            "gelöschte objekte",
            "gelöschte elemente",
            "corbeille",
            "éléments supprimés",
            "papelera",
            "elementos eliminados",
            "cestino",
            "prullenbak",
            "verwijderde items",
            "papperskorgen",
            "kosz",
        ],
    ),
    (
        "Junk",
        "\\Junk",
        &[
            "junk",
            "spam",
            "junk e-mail",
            "junk email",
            "junk mail",
            "bulk mail",
            "courrier indésirable",
            "indésirables",
            "correo no deseado",
            "posta indesiderata",
            "ongewenste e-mail",
            "skräppost",
        ],
    ),
    (
        "Archive",
        "\\Archive",
        &[
            "archive", "archives", "archiv", "archivio", "archivo", "archief", "arkiv", "archiwum",
        ],
    ),
];

/// The mapping of one user's folders.
#[derive(Debug, Default)]
pub struct Mapper {
    /// The personal namespace prefix (`INBOX.` on Courier, empty on Dovecot).
    pub prefix: String,
    /// Source top-level name → our special name, decided once for the whole list.
    special: Vec<(String, &'static str)>,
}

impl Mapper {
    /// Decide the special folders of `list`: by attribute first, then by usual name; each
    /// of ours taken once.
    pub fn new(prefix: &str, list: &[Source]) -> Mapper {
        let mut m = Mapper {
            prefix: prefix.to_owned(),
            special: Vec::new(),
        };
        let tops: Vec<(&Source, Vec<String>)> = list
            .iter()
            .map(|s| (s, m.parts(s)))
            .filter(|(_, p)| p.len() == 1 && !p[0].eq_ignore_ascii_case("INBOX"))
            .collect();
        for (ours, attr, _) in USUAL {
            if let Some((_, p)) = tops
                .iter()
                .find(|(s, _)| s.attrs.iter().any(|a| a.eq_ignore_ascii_case(attr)))
            {
                m.special.push((p[0].clone(), ours));
            }
        }
        for (ours, _, names) in USUAL {
            if m.special.iter().any(|(_, o)| *o == ours) {
                continue;
            }
            let decoded = |p: &str| mutf7::decode(p).unwrap_or_else(|_| p.to_owned());
            // The exact name first, then the other usual ones in the order listed.
            let found = names.iter().find_map(|n| {
                tops.iter().find(|(_, p)| {
                    decoded(&p[0]).to_lowercase() == *n
                        && !m.special.iter().any(|(s, _)| *s == p[0])
                })
            });
            if let Some((_, p)) = found {
                m.special.push((p[0].clone(), ours));
            }
        }
        m
    }

    /// The levels of a source name, the namespace prefix removed (mUTF-7 each).
    fn parts(&self, s: &Source) -> Vec<String> {
        if s.name.eq_ignore_ascii_case("INBOX") {
            return vec!["INBOX".into()];
        }
        let name = if !self.prefix.is_empty() && s.name.starts_with(&self.prefix) {
            &s.name[self.prefix.len()..]
        } else {
            &s.name
        };
        match s.sep {
            Some(c) => name.split(c).map(str::to_owned).collect(),
            None => vec![name.to_owned()],
        }
    }

    /// Our name for source folder `s` (`INBOX`, or `/`-separated mUTF-7), or why it has
    /// none.
    pub fn ours(&self, s: &Source) -> Result<String, String> {
        let mut parts = self.parts(s);
        if parts.len() == 1 && parts[0] == "INBOX" {
            return Ok("INBOX".into());
        }
        if let Some((_, o)) = self.special.iter().find(|(p, _)| *p == parts[0]) {
            parts[0] = (*o).to_owned();
        }
        for p in &mut parts {
            // A `/` inside a level (a server whose separator is `.`) cannot be ours: it
            // becomes `_`, as Dovecot's and Courier's converters do.
            if p.contains('/') {
                *p = p.replace('/', "_");
            }
            let d = mutf7::decode(p).map_err(|e| format!("bad modified UTF-7 name: {e}"))?;
            *p = mutf7::encode(&d);
        }
        let name = parts.join("/");
        mailorder_imap_store::valid_imap_name(&name).map_err(|e| e.to_string())?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, sep: char, attrs: &[&str]) -> Source {
        Source {
            name: name.into(),
            sep: Some(sep),
            attrs: attrs.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn dovecot_and_courier_names() {
        let list = [
            src("INBOX", '/', &[]),
            src("Sent Items", '/', &[]),
            src("Gesendet", '/', &["\\Sent"]),
            src("Papierkorb", '/', &[]),
            src("Lists/rust", '/', &[]),
            src("R&AOk-sum&AOk-", '/', &[]),
            src("a.b", '/', &[]),
            src("Papierkorb/alt", '/', &[]),
        ];
        let m = Mapper::new("", &list);
        let ours: Vec<String> = list.iter().map(|s| m.ours(s).unwrap()).collect();
        assert_eq!(
            ours,
            [
                "INBOX",
                "Sent Items",
                "Sent",
                "Trash",
                "Lists/rust",
                "R&AOk-sum&AOk-",
                "a.b",
                "Trash/alt"
            ]
        );
        let courier = [
            src("INBOX", '.', &[]),
            src("INBOX.Sent", '.', &[]),
            src("INBOX.Lists.rust", '.', &[]),
            src("INBOX.a/b", '.', &[]),
            src("INBOX.&AMk-l&AOk-ments envoy&AOk-s", '.', &[]),
        ];
        let m = Mapper::new("INBOX.", &courier);
        let ours: Vec<String> = courier.iter().map(|s| m.ours(s).unwrap()).collect();
        assert_eq!(
            ours,
            [
                "INBOX",
                "Sent",
                "Lists/rust",
                "a_b",
                "&AMk-l&AOk-ments envoy&AOk-s"
            ]
        );
    }
}

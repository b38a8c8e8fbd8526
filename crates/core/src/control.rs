//! Control files: one setting per file, one value per line, under `ROOT/control`.
//!
//! A missing file means the documented default; an unreadable one is an error the caller
//! must treat as temporary. Blank lines and lines starting with `#` are ignored; surrounding
//! white space is trimmed.

use std::io;
use std::path::{Path, PathBuf};

/// A control file that exists but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The file exists but could not be read.
    #[error("cannot read control file {path}: {source} (#4.3.5)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The value is not what the setting takes.
    #[error("control file {path}: bad value {value:?} (#4.3.5)")]
    Value {
        /// The file.
        path: PathBuf,
        /// The offending value.
        value: String,
    },
}

/// Control files under one directory.
#[derive(Debug, Clone)]
pub struct Control {
    dir: PathBuf,
}

impl Default for Control {
    fn default() -> Self {
        Control::new(crate::root::control_dir())
    }
}

impl Control {
    /// Control files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Control {
        Control { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of control file `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// All meaningful lines of `name`, or `None` when the file does not exist.
    pub fn lines(&self, name: &str) -> Result<Option<Vec<String>>, ControlError> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
                    .collect(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ControlError::Read { path, source }),
        }
    }

    /// The first meaningful line of `name`, or `None` when missing or empty.
    pub fn line(&self, name: &str) -> Result<Option<String>, ControlError> {
        Ok(self.lines(name)?.and_then(|l| l.into_iter().next()))
    }

    /// `name` as a string, or `default`.
    pub fn string(&self, name: &str, default: &str) -> Result<String, ControlError> {
        Ok(self.line(name)?.unwrap_or_else(|| default.to_owned()))
    }

    /// `name` as a number, or `default`.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, ControlError> {
        match self.line(name)? {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ControlError::Value {
                path: self.path(name),
                value: v,
            }),
        }
    }

    /// This host's name for greetings, `Received:` lines, bounces and loop checks:
    /// `control/me`, else the system's host name, else `localhost`. One rule for every
    /// program, so smtpd, dispatch and remote-send never disagree about who "we" are.
    pub fn me(&self) -> Result<String, ControlError> {
        if let Some(me) = self.line("me")? {
            return Ok(me);
        }
        Ok(nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned()))
    }

    /// `name` as a list of lines (empty when missing).
    pub fn list(&self, name: &str) -> Result<Vec<String>, ControlError> {
        Ok(self.lines(name)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_values_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let c = Control::new(d.path());
        assert_eq!(c.number("databytes", 7).unwrap(), 7);
        std::fs::write(d.path().join("databytes"), "# comment\n\n 1234 \n").unwrap();
        assert_eq!(c.number("databytes", 7).unwrap(), 1234);
        std::fs::write(d.path().join("me"), "mx.example.test\n").unwrap();
        assert_eq!(c.string("me", "x").unwrap(), "mx.example.test");
        std::fs::write(d.path().join("bad"), "ten\n").unwrap();
        assert!(matches!(
            c.number("bad", 1),
            Err(ControlError::Value { .. })
        ));
        std::fs::create_dir(d.path().join("dir")).unwrap();
        assert!(matches!(c.lines("dir"), Err(ControlError::Read { .. })));
    }
}

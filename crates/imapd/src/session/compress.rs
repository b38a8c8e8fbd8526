//! COMPRESS=DEFLATE (RFC 4978): the inflating reader and the switch.

use super::*;
use mailorder_imap_proto::args::{CompressAlg, parse_compress};

impl<W: Write> Session<W> {
    /// The next input for the framer: inflated (in steps of at most [`INFLATE_STEP`], so a
    /// small compressed burst cannot blow up in memory) once COMPRESS is active.
    pub(super) fn recv(&mut self, input: &Input, t: std::time::Duration) -> Result<Got, ImapError> {
        if let Some(piece) = self.inflate_step()? {
            return Ok(Got::Data(piece));
        }
        let got = input.recv(t)?;
        match (got, self.zin.as_mut()) {
            (Got::Data(d), Some((_, pending))) => {
                pending.extend_from_slice(&d);
                Ok(match self.inflate_step()? {
                    Some(p) => Got::Data(p),
                    None => Got::Timeout,
                })
            }
            (g, _) => Ok(g),
        }
    }

    pub(super) fn inflate_step(&mut self) -> Result<Option<Vec<u8>>, ImapError> {
        let Some((z, pending)) = self.zin.as_mut() else {
            return Ok(None);
        };
        // Even with no input left the inflater may hold output that did not fit the
        // last step.
        let mut out = Vec::with_capacity(INFLATE_STEP);
        let before = z.total_in();
        z.decompress_vec(pending, &mut out, flate2::FlushDecompress::Sync)
            .map_err(|e| ImapError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let used = usize::try_from(z.total_in() - before).unwrap_or(pending.len());
        pending.drain(..used.min(pending.len()));
        if out.is_empty() {
            if used == 0 {
                // Not a whole deflate block yet: wait for more.
                return Ok(None);
            }
            return self.inflate_step();
        }
        Ok(Some(out))
    }

    /// COMPRESS DEFLATE: reply in clear, then both directions compressed.
    pub(super) fn compress(&mut self, cmd: &Command, fr: &mut Framer) -> Result<(), ImapError> {
        let tag = &cmd.tag;
        if self.zout.is_some() {
            self.line(&format!("{tag} NO [COMPRESSIONACTIVE] Already compressed"));
            return Ok(());
        }
        match parse_compress(&cmd.args) {
            Ok(CompressAlg::Deflate) => {}
            Err(e) => {
                self.line(&format!("{tag} BAD {e}"));
                return Ok(());
            }
        }
        self.line(&format!("{tag} OK DEFLATE active"));
        self.flush()?;
        self.zout = Some(flate2::write::DeflateEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        // Whatever the client sent after the command was already compressed.
        let early = fr.take_buffered();
        self.zin = Some((flate2::Decompress::new(false), early));
        Ok(())
    }
}

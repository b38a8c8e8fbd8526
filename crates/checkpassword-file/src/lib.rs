//! checkpassword interface over the embedded file directory

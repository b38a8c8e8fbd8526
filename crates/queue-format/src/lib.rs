//! On-disk queue layout, text0 envelope codec, message state files

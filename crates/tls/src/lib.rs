//! rustls server configuration and a blocking TLS stream over fd 0/1

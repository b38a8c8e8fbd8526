//! ESMTP receiver under tcpserver or systemd Accept=yes

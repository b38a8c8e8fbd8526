//! A small tcpserver: accept on an address, run a program per connection with UCSPI env

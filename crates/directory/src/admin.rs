//! Writes for `useradm`: placeholder.

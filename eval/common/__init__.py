"""Shared by every eval sub-package: exit codes and printable messages, records, run-folder file names."""

"""Data protection: lock-out mode and unlock, erasure (GDPR art. 17), export (art. 15),
masking of test copies (issue 15)."""

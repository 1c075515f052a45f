// The hostile tests are being written.

// The golden tests are being written.

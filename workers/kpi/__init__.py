"""Key performance indicators: pure computations over readings, no I/O and no clock."""

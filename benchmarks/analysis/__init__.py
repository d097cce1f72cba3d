"""The science: signal-propagation probe, mean-field theory, the variance check, the variance table."""

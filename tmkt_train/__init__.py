"""tmkt_train: spiking networks trained with Time-step Mixup Knowledge Transfer."""

__version__ = "0.1.0"

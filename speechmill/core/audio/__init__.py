"""Audio: decoding to 16 kHz FLAC, spans and ids, augmentation."""

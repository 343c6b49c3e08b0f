"""Alignment: word timings, the CTC Viterbi, resegmentation."""

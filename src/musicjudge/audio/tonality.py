"""Key profiles shared by the features and judges that reason about tonality."""

from __future__ import annotations

# Krumhansl-Kessler probe-tone profiles (Krumhansl 1990), tonic first. Correlating a chroma
# vector with the 12 rotations of each gives key and mode evidence; a clip whose chroma fits no
# rotation well (wrong notes, noise) has low tonal clarity.
KRUMHANSL_MAJOR: tuple[float, ...] = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KRUMHANSL_MINOR: tuple[float, ...] = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
# Pitch-class names in chroma order (C = 0), sharps spelled as musicjudge prompts spell them.
PITCH_CLASSES: tuple[str, ...] = ("c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b")

#!/usr/bin/env python3
"""Generates the external-truth files for mcx-media's tests (run once, output committed).

Independent implementations used:
- CPython 3.11 `audioop` (Modules/audioop.c, derived from Sun Microsystems' public-domain
  g711.c): `ulaw2lin` for the 256-entry mu-law decode table and `lin2ulaw` for the encoding
  of every one of the 65,536 16-bit linear values.
- CPython `wave` for WAV files written by another tool.

    python3 gen.py   # in mcx-media/tests/data
"""
import audioop, math, struct, wave

# Decode table: code 0..255 -> i16, little-endian.
with open("pcmu_decode_audioop.bin", "wb") as f:
    f.write(audioop.ulaw2lin(bytes(range(256)), 2))

# Encoder: every i16 from -32768 to 32767 in order -> one mu-law octet each.
lin = struct.pack("<65536h", *range(-32768, 32768))
with open("pcmu_encode_audioop.bin", "wb") as f:
    f.write(audioop.lin2ulaw(lin, 2))

# 44.1 kHz stereo 16-bit, 0.1 s: left 440 Hz, right 1 kHz (python's `wave` writes it).
def stereo_44k1():
    frames = bytearray()
    for n in range(4410):
        l = int(round(12000 * math.sin(2 * math.pi * 440 * n / 44100)))
        r = int(round(-8000 * math.sin(2 * math.pi * 1000 * n / 44100)))
        frames += struct.pack("<hh", l, r)
    with wave.open("py_wave_44100_stereo_s16.wav", "wb") as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(44100)
        w.writeframes(bytes(frames))

# 8 kHz mono 8-bit unsigned, 200 samples of a ramp (python's `wave` writes it).
def mono_8bit():
    with wave.open("py_wave_8000_mono_u8.wav", "wb") as w:
        w.setnchannels(1); w.setsampwidth(1); w.setframerate(8000)
        w.writeframes(bytes((n * 7) % 256 for n in range(200)))

stereo_44k1()
mono_8bit()

# What python's `wave` reads back from those files (the raw data chunk as it sees it).
for name in ["py_wave_44100_stereo_s16", "py_wave_8000_mono_u8"]:
    with wave.open(name + ".wav", "rb") as w:
        with open(name + ".raw", "wb") as f:
            f.write(w.readframes(w.getnframes()))

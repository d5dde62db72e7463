"""ABC notation to sound, offline (Lecture 2's folk songs): a small ABC reader, a plucked-string
synthesizer in NumPy and a 16-bit WAV writer.

    notes = gn.music.parse_abc(song)        # [(midi_pitch or None, beats), ...]
    gn.music.abc_to_wav(song, "song.wav")   # listen to a generated song

The reader covers what the corpus uses: K: keys with modes, L: unit lengths, M: meters, notes
with octave marks, accidentals and lengths, rests, ties, broken rhythm, tuplets, repeats with
first and second endings, and chords (their first note). Chord names, decorations and grace
notes are skipped; symbols it cannot read are skipped and counted in one :class:`ABCWarning`.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
import wave
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core.files import atomic_write

__all__ = ["Note", "ABCWarning", "parse_abc", "is_valid_song", "synthesize", "write_wav",
           "abc_to_wav"]


class Note(NamedTuple):
    """One sounded note or rest: MIDI ``pitch`` (60 = middle C = ABC ``C``; None for a rest)
    and its length in ``beats`` (quarter notes: an ``L:1/8`` note of length 1 is 0.5)."""

    pitch: int | None
    beats: float


class ABCWarning(UserWarning):
    """Some of an ABC text could not be read and was skipped."""


# -- keys ------------------------------------------------------------------------------------

_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# position of each major key on the circle of fifths: its count of sharps (negative: flats)
_MAJOR_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F": -1}
# a mode's tonic sits this many fifths from the tonic of the major scale with the same notes
_MODE_SHIFT = {"maj": 0, "ion": 0, "mix": -1, "dor": -2, "min": -3, "aeo": -3, "m": -3,
               "phr": -4, "loc": -5, "lyd": 1}
_SHARP_ORDER, _FLAT_ORDER = "FCGDAEB", "BEADGCF"


def _key_signature(field: str) -> dict[str, int] | None:
    """The semitone shift of each letter under a K: field ("D Major", "Ador", "F# Minor"), or
    None when the field is not a key this reader knows."""
    f = field.strip()
    if f in ("", "none", "HP"):  # HP: Highland pipes, written without a signature
        return {}
    if f == "Hp":  # Highland pipes with their signature: F and C sharp, G natural
        return {"F": 1, "C": 1}
    m = re.fullmatch(r"([A-G])([#b]?)\s*([A-Za-z]*)", f)
    if not m:
        return None
    tonic, acc, mode = m.group(1), m.group(2), m.group(3).lower()
    mode = mode if mode in ("", "m") else mode[:3]
    if mode not in _MODE_SHIFT and mode != "":
        return None
    fifths = _MAJOR_FIFTHS[tonic] + 7 * {"#": 1, "b": -1, "": 0}[acc] + _MODE_SHIFT.get(mode, 0)
    if not -7 <= fifths <= 7:
        return None
    if fifths >= 0:
        return {c: 1 for c in _SHARP_ORDER[:fifths]}
    return {c: -1 for c in _FLAT_ORDER[:-fifths]}


def _fraction(field: str) -> Fraction | None:
    """"3/4" -> Fraction(3, 4); "C" -> 4/4; "C|" -> 2/2; None for free meter or nonsense."""
    f = field.strip().split()[0] if field.strip() else ""
    if f == "C":
        return Fraction(1)
    if f == "C|":
        return Fraction(1)  # cut time: 2/2, a whole note per bar like 4/4
    m = re.fullmatch(r"(\d+)/(\d+)", f)
    if m and int(m.group(1)) > 0 and int(m.group(2)) > 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    return None


# -- the reader ------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<field>\[[A-Za-z]:[^\]\n]*\])                                 # inline field [K:G]
  | (?P<ending>\[\d+(?:[,-]\d+)*)                                    # ending [1 [2
  | (?P<barline>(?P<bar>::|:*\[?\|+\]?:*)(?P<barend>\d+(?:[,-]\d+)*)?) # | || |] :| |: :: |1
  | (?P<chord>\[(?=[_^=]*[A-Ga-g])[^\]\n]*\](?P<clen>\d*(?:/+\d*)?)) # [CEG]2: first note
  | (?P<note>(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-g])(?P<oct>[,']*)(?P<len>\d*(?:/+\d*)?))
  | (?P<rest>[zx](?P<rlen>\d*(?:/+\d*)?))
  | (?P<bars>Z(?P<zlen>\d*))                                         # Z4: rest four bars
  | (?P<tuplet>\((?P<p>\d+)(?::(?P<q>\d*))?(?::(?P<r>\d*))?)
  | (?P<broken>[<>]+)
  | (?P<tie>-)
  | (?P<skip>"[^"\n]*"|\{[^}\n]*\}|![^!\s|:]+!|\+[^+\s|:]+\+    # chord names, grace notes,
             |[~.HLMOPSTuv]|[()\s!\\`$y]|%.*)                      # decorations, slurs, comments
""", re.VERBOSE)

_FIELD_LINE = re.compile(r"^\s*([A-Za-z]):(.*)$")


@functools.lru_cache(maxsize=256)
def _length(s: str) -> float:
    """An ABC length suffix as a multiple of the unit: "" 1, "3" 3, "/" 1/2, "//" 1/4,
    "3/2" 3/2, "/4" 1/4; 0 for a length that is not one ("/0", "0")."""
    m = re.fullmatch(r"(\d*)((?:/\d*)*)", s)
    num = Fraction(int(m.group(1))) if m.group(1) else Fraction(1)
    for d in re.findall(r"/(\d*)", m.group(2)):
        if d and int(d) == 0:
            return 0.0
        num /= int(d) if d else 2
    return float(num)


class _Reader:
    """The state of one pass over an ABC tune, producing notes with repeats expanded."""

    def __init__(self) -> None:
        self.key: dict[str, int] = {}
        self.unit = Fraction(1, 8)  # L:, in whole notes
        self.beats = 0.5  # the unit in quarter-note beats
        self.unit_set = False
        self.meter: Fraction | None = Fraction(1)  # M:, a bar in whole notes
        self.compound = False
        self.out: list[list] = []  # [pitch, beats]
        self.skipped: list[str] = []
        self.bar_acc: dict[tuple[str, int], int] = {}
        self.rep_start = 0  # where the section a :| repeats begins
        self.ending1 = None  # where a first ending began, inside the current section
        self.second_ending = False  # past a [2: its :| does not repeat again
        self.tuplet_left, self.tuplet_factor = 0, 1.0
        self.broken_next = 1.0  # the factor a > or < left for the next note
        self.tie = False

    # fields
    def field(self, name: str, value: str) -> None:
        value = value.split("%")[0].strip()
        if name == "K":
            key = _key_signature(value)
            if key is None:
                self.skipped.append(f"K:{value}")
            else:
                self.key = key
        elif name == "L":
            m = re.fullmatch(r"(\d+)/(\d+)", value.split()[0] if value else "")
            if m and int(m.group(1)) > 0 and int(m.group(2)) > 0:
                self.unit, self.unit_set = Fraction(int(m.group(1)), int(m.group(2))), True
                self.beats = float(4 * self.unit)
            else:
                self.skipped.append(f"L:{value}")
        elif name == "M":
            meter = _fraction(value) if value.strip().lower() != "none" else None
            m = re.match(r"(\d+)/(\d+)", value.strip())
            self.meter = meter
            self.compound = bool(m) and int(m.group(1)) in (6, 9, 12) and m.group(2) == "8"
            if not self.unit_set and meter is not None:
                self.unit = Fraction(1, 16) if meter < Fraction(3, 4) else Fraction(1, 8)
                self.beats = float(4 * self.unit)

    # notes
    def add(self, pitch: int | None, mult: float, token: str) -> None:
        if mult <= 0:  # "A0", "A/0": no length to play
            self.skipped.append(token)
            return
        if pitch is not None and not 0 <= pitch <= 127:  # beyond MIDI: keep its time
            self.skipped.append(token)
            pitch = None
        beats = self.beats * mult * self.broken_next
        self.broken_next = 1.0
        if self.tuplet_left:
            beats *= self.tuplet_factor
            self.tuplet_left -= 1
        if self.tie and self.out and pitch is not None and self.out[-1][0] == pitch:
            self.out[-1][1] += beats  # a tie holds the note on: one longer note
        else:
            self.out.append([pitch, beats])
        self.tie = False

    def pitch(self, acc: str | None, letter: str, octave_marks: str) -> int:
        up = letter.upper()
        octave = (1 if letter.islower() else 0) + octave_marks.count("'") - \
            octave_marks.count(",")
        if acc:
            shift = {"^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}[acc]
            self.bar_acc[(up, octave)] = shift  # holds for this pitch to the end of the bar
        else:
            shift = self.bar_acc.get((up, octave), self.key.get(up, 0))
        return 60 + 12 * octave + _SEMITONE[up] + shift

    # bars and repeats
    def bar(self, text: str, ending: str | None) -> None:
        """A bar line: ``:|`` plays the section since ``|:`` (or the last repeat, or the
        start) once more, without its first ending; a second ending closes at the next
        ``:|``, ``||`` or ``|]``; ``|:`` and double bars start a new section."""
        self.bar_acc = {}
        if text.startswith(":") and not self.second_ending:
            stop = self.ending1 if self.ending1 is not None else len(self.out)
            self.out.extend([list(n) for n in self.out[self.rep_start:stop]])
            self.rep_start, self.ending1 = len(self.out), None
        if text.startswith(":") or text.endswith(":") or text in ("||", "|]", "[|"):
            if self.ending1 is None:  # a double bar inside a first ending closes nothing
                self.rep_start, self.second_ending = len(self.out), False
        if ending is not None:
            self.start_ending(ending)

    def start_ending(self, number: str) -> None:
        """``[1`` marks where the part skipped on the repeat begins; ``[2`` (or later)
        begins the part played instead."""
        self.bar_acc = {}
        if number.startswith("1"):
            self.ending1, self.second_ending = len(self.out), False
        else:
            self.ending1, self.second_ending = None, True

    def line(self, text: str) -> None:
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                self.skipped.append(text[pos])
                pos += 1
                continue
            pos = m.end()
            kind = m.lastgroup  # the outermost group: the kind of token
            if kind == "note":
                self.add(self.pitch(m.group("acc"), m.group("letter"), m.group("oct")),
                         _length(m.group("len")), m.group(0))
            elif kind == "skip":
                pass  # nothing to play
            elif kind == "barline":
                self.bar(m.group("bar"), m.group("barend"))
            elif kind == "field":
                inner = m.group("field")[1:-1]
                self.field(inner[0], inner[2:])
            elif kind == "ending":
                self.start_ending(m.group("ending")[1:])
            elif kind == "chord":
                first = re.search(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)(\d*(?:/+\d*)?)",
                                  m.group("chord"))
                self.add(self.pitch(first.group(1), first.group(2), first.group(3)),
                         _length(first.group(4)) * _length(m.group("clen")), m.group(0))
            elif kind == "rest":
                self.add(None, _length(m.group("rlen")), m.group(0))
            elif kind == "bars":
                if self.meter is None:
                    self.skipped.append(m.group(0))
                else:
                    self.add(None, float(self.meter / self.unit) * int(m.group("zlen") or 1),
                             m.group(0))
            elif kind == "tuplet":
                p = int(m.group("p"))
                if p < 2:
                    self.skipped.append(m.group(0))
                    continue
                # (p: p notes in the time of q; q is 3 for (2 (4 (8, 2 for (3 (6, else by meter
                default_q = 3 if p in (2, 4, 8) else 2 if p in (3, 6) else \
                    (3 if self.compound else 2)
                q = int(m.group("q")) if m.group("q") else default_q
                r = int(m.group("r")) if m.group("r") else p
                if q < 1:
                    self.skipped.append(m.group(0))
                    continue
                self.tuplet_left, self.tuplet_factor = r, q / p
            elif kind == "broken":
                s = m.group("broken")
                if not self.out or len(set(s)) != 1 or len(s) > 3:
                    self.skipped.append(s)
                    continue
                # > dots the note before and halves the next; >> and >>> dot and halve again
                short = 0.5 ** len(s)
                first, second = (2 - short, short) if s[0] == ">" else (short, 2 - short)
                self.out[-1][1] *= first
                self.broken_next = second
            elif kind == "tie":
                self.tie = bool(self.out)


def _read(text: str) -> tuple[list[Note], list[str], bool, bool]:
    """Notes, skipped symbols, and whether the text has X: and K: fields."""
    r = _Reader()
    lines = text.replace("\r\n", "\n").split("\n")
    has_x = any(re.match(r"\s*X:", ln) for ln in lines)
    has_k = any(re.match(r"\s*K:", ln) for ln in lines)
    in_body = not has_k  # with a K: field, the tune begins after the first one
    for ln in lines:
        f = _FIELD_LINE.match(ln)
        # A: to G: are header fields, but in the tune a line may begin "A:|" or "z:|"
        if f and not (in_body and f.group(1) in "ABCDEFGabcdefgzx"):
            r.field(f.group(1), f.group(2))
            in_body = in_body or f.group(1) == "K"
        elif in_body:
            r.line(ln)
    notes = [Note(p, b) for p, b in r.out if b > 0]
    return notes, r.skipped, has_x, has_k


def parse_abc(text: str) -> list[Note]:
    """The notes of one ABC tune, repeats played out: ``[(midi_pitch or None, beats), ...]``.

    Never raises on bad input: what it cannot read is skipped and counted in one
    :class:`ABCWarning` (filter it with ``warnings.simplefilter("ignore", ABCWarning)``).
    """
    notes, skipped, _, _ = _read(text)
    if skipped:
        shown = ", ".join(repr(s) for s in skipped[:8])
        warnings.warn(f"parse_abc skipped {len(skipped)} unreadable symbol(s): {shown}"
                      f"{', ...' if len(skipped) > 8 else ''}", ABCWarning, stacklevel=2)
    return notes


def is_valid_song(text: str, min_notes: int = 5) -> bool:
    """Whether ``text`` looks like a playable tune: it has X: and K: fields and at least
    ``min_notes`` pitched notes parse (used to score generated songs; never warns)."""
    notes, _, has_x, has_k = _read(text)
    return has_x and has_k and sum(n.pitch is not None for n in notes) >= min_notes


# -- sound -----------------------------------------------------------------------------------

def _tone(pitch: int, n: int, sample_rate: int) -> np.ndarray:
    """A plucked-string-like tone of ``n`` samples: decaying harmonics, each faster than the
    one below, with a 5 ms attack and a 10 ms release so notes join without clicks."""
    t = np.arange(n) / sample_rate
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
    y = np.zeros(n)
    for k, amp in ((1, 1.0), (2, 0.5), (3, 0.25), (4, 0.125)):
        if k * f0 < sample_rate / 2:  # nothing above Nyquist: it would alias
            y += amp * np.exp(-t * (2.0 + 1.5 * k)) * np.sin(2 * np.pi * k * f0 * t)
    attack, release = min(n, int(0.005 * sample_rate)), min(n, int(0.010 * sample_rate))
    if attack:
        y[:attack] *= np.linspace(0, 1, attack, endpoint=False)
    if release:
        y[n - release:] *= np.linspace(1, 0, release)
    return y


def synthesize(notes: list, tempo_bpm: float = 120, sample_rate: int = 22050,
               max_seconds: float = 600) -> np.ndarray:
    """A float32 mono waveform in [-1, 1] playing ``notes`` (``(pitch or None, beats)``) at
    ``tempo_bpm`` quarter-note beats per minute: ``round(sum(beats) * 60 / tempo_bpm *
    sample_rate)`` samples, each note starting where its beat falls. Longer than
    ``max_seconds`` (a generated "A99999") is refused with a ValueError."""
    if not tempo_bpm > 0 or int(sample_rate) <= 0:
        raise ValueError(f"tempo_bpm and sample_rate must be positive, got {tempo_bpm} and "
                         f"{sample_rate}")
    sample_rate = int(sample_rate)
    beats = np.array([float(b) for _, b in notes], dtype=np.float64)
    if np.any(~np.isfinite(beats)) or np.any(beats < 0):
        raise ValueError("note lengths must be finite and >= 0")
    seconds = beats.sum() * 60.0 / tempo_bpm
    if seconds > max_seconds:
        raise ValueError(f"the notes last {seconds:.0f} s, more than max_seconds="
                         f"{max_seconds:g}; raise it to synthesize them anyway")
    # note boundaries from the running sum of beats, so rounding never drifts
    edges = np.rint(np.concatenate([[0.0], np.cumsum(beats)]) * 60.0 / tempo_bpm
                    * sample_rate).astype(np.int64)
    out = np.zeros(int(edges[-1]), dtype=np.float64)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for (pitch, _), lo, hi in zip(notes, edges[:-1], edges[1:]):
        if pitch is None or hi <= lo:
            continue
        key = (int(pitch), int(hi - lo))
        if key not in cache:
            cache[key] = _tone(key[0], key[1], sample_rate)
        out[lo:hi] = cache[key]
    peak = np.abs(out).max() if len(out) else 0.0
    if peak > 0:
        out *= 0.8 / peak
    return out.astype(np.float32)


def write_wav(path: str | os.PathLike, wave_data: np.ndarray, sample_rate: int = 22050) -> Path:
    """Write a float waveform in [-1, 1] (clipped; (n,) mono or (n, channels)) as a 16-bit PCM
    WAV file, atomically: into a temporary file beside ``path``, then renamed over it."""
    data = np.asarray(wave_data, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] < 1:
        raise ValueError(f"a waveform is (samples,) or (samples, channels), got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("the waveform has NaN or infinite samples")
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    pcm = np.rint(np.clip(data, -1, 1) * 32767).astype("<i2")
    path = Path(path)

    def write(f) -> None:
        with wave.open(f, "wb") as w:
            w.setnchannels(pcm.shape[1])
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.tobytes())
    atomic_write(path, write, mode=0o644)  # a sound file others may read, unlike mkstemp's
    return path


def abc_to_wav(text: str, path: str | os.PathLike, tempo_bpm: float = 120,
               sample_rate: int = 22050, max_seconds: float = 600) -> Path:
    """Parse the ABC tune ``text``, synthesize it and write it to ``path`` as a WAV file."""
    notes = parse_abc(text)
    if not any(p is not None for p, _ in notes):
        raise ValueError("the ABC text has no notes to play (is_valid_song tells beforehand)")
    return write_wav(path, synthesize(notes, tempo_bpm, sample_rate, max_seconds), sample_rate)

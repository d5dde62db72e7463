"""The ABC reader, synthesizer and WAV writer (Lecture 2's folk songs): hand-written tunes
with known pitches and lengths, the whole corpus, and sound that can be read back."""

import os
import warnings
import wave

import numpy as np
import pytest

from graphnet import datasets
from graphnet.data.music import (
    ABCWarning,
    abc_to_wav,
    is_valid_song,
    parse_abc,
    synthesize,
    write_wav,
)

pytestmark = pytest.mark.lecture2

# MIDI numbers written out: middle C (ABC "C") is 60
C4, D4, E4, F4, G4, A4, B4 = 60, 62, 64, 65, 67, 69, 71
C5, D5, E5, F5, G5, A5, B5 = 72, 74, 76, 77, 79, 81, 83


def tune(body: str, key: str = "C", unit: str = "1/8", meter: str = "4/4") -> str:
    return f"X:1\nT:Test\nM:{meter}\nL:{unit}\nK:{key}\n{body}\n"


def pitches(text: str) -> list:
    return [p for p, _ in parse_abc(text)]


def beats(text: str) -> list:
    return [b for _, b in parse_abc(text)]


def test_pitches_octaves_and_accidentals():
    assert pitches(tune("CDEF GABc defg ab")) == [C4, D4, E4, F4, G4, A4, B4, C5, D5, E5, F5,
                                                  G5, A5, B5]
    assert pitches(tune("C, C,, c' c'' B,")) == [48, 36, 84, 96, 59]
    assert pitches(tune("^C _B =F ^^F __B")) == [61, 70, F4, 67, 69]
    # an accidental holds for the same pitch (not the octave above) to the end of the bar
    assert pitches(tune("^F F f | F")) == [66, 66, F5, F4]


@pytest.mark.parametrize("key,sharpened,flattened", [
    ("D Major", "FC", ""), ("G Major", "F", ""), ("A Dorian", "F", ""),
    ("D Mixolydian", "F", ""), ("E Minor", "F", ""), ("A Mixolydian", "FC", ""),
    ("B Minor", "FC", ""), ("F# Minor", "FCG", ""), ("G Mixolydian", "", ""),
    ("F Major", "", "B"), ("D Minor", "", "B"), ("G Dorian", "", "B"), ("Bb", "", "BE"),
    ("Ador", "F", ""), ("Em", "F", ""), ("Amix", "FC", ""), ("C Major", "", ""),
])
def test_key_signatures_with_modes(key, sharpened, flattened):
    natural = [C4, D4, E4, F4, G4, A4, B4]
    want = [p + ("CDEFGAB"[i] in sharpened) - ("CDEFGAB"[i] in flattened)
            for i, p in enumerate(natural)]
    assert pitches(tune("CDEFGAB", key=key)) == want
    # a natural sign cancels the key for the rest of the bar
    assert pitches(tune("=F F | F", key="D Major")) == [F4, F4, F4 + 1]


def test_lengths():
    assert beats(tune("A A2 A3 A/ A/2 A// A3/2 A4")) == [0.5, 1, 1.5, 0.25, 0.25, 0.125, 0.75,
                                                          2]
    assert beats(tune("A A2 A/", unit="1/4")) == [1, 2, 0.5]
    # no L: field: 1/16 below a 3/4 meter, 1/8 otherwise
    assert beats("X:1\nM:2/4\nK:C\nA A2\n") == [0.25, 0.5]
    assert beats("X:1\nM:6/8\nK:C\nA A2\n") == [0.5, 1]


def test_rests_ties_and_broken_rhythm():
    assert parse_abc(tune("z2 A z/")) == [(None, 1), (A4, 0.5), (None, 0.25)]
    assert parse_abc(tune("A2-A B d3-d2")) == [(A4, 1.5), (B4, 0.5), (D5, 2.5)]
    assert parse_abc(tune("A>B c<d")) == [(A4, 0.75), (B4, 0.25), (C5, 0.25), (D5, 0.75)]
    assert beats(tune("A>>B")) == [0.875, 0.125]
    assert beats(tune("A2>B2")) == [1.5, 0.5]


def test_triplets():
    got = parse_abc(tune("(3ABc d (3d2e2f2"))
    assert [p for p, _ in got] == [A4, B4, C5, D5, D5, E5, F5]
    np.testing.assert_allclose([b for _, b in got], [1 / 3] * 3 + [0.5] + [2 / 3] * 3)
    # (p:q:r puts p notes in the time of q for the next r notes
    np.testing.assert_allclose(beats(tune("(3:2:2AB c")), [1 / 3, 1 / 3, 0.5])
    np.testing.assert_allclose(beats(tune("(2AB c", meter="6/8")), [0.75, 0.75, 0.5])


def test_repeats_and_endings():
    # a :| with no |: plays from the start of the tune, then from the end of the last repeat
    assert pitches(tune("A B :| c d :|")) == [A4, B4, A4, B4, C5, D5, C5, D5]
    assert pitches(tune("A |: B c :| d")) == [A4, B4, C5, B4, C5, D5]
    assert pitches(tune("A :: B :|")) == [A4, A4, B4, B4]
    # first and second endings, written [1 [2 and |1 :|2
    assert pitches(tune("A B |[1 c :|[2 d |] e f :|")) == [A4, B4, C5, A4, B4, D5, E5, F5,
                                                         E5, F5]
    assert pitches(tune("A |1 c :|2 d |]")) == [A4, C5, A4, D5]
    assert pitches(tune("A B |\n[1 c :|\n[2 d |]")) == [A4, B4, C5, A4, B4, D5]


def test_chords_decorations_grace_notes_and_fields():
    assert parse_abc(tune("[CEG]2 [^FA]/ G")) == [(C4, 1), (66, 0.25), (G4, 0.5)]
    assert pitches(tune('"Am"A "G7"G !trill!A ~B .c {ga}d T e u f')) == [A4, G4, A4, B4, C5,
                                                                       D5, E5, F5]
    # fields inline and on their own line change the key and the unit length mid-tune
    assert pitches(tune("F [K:G] F |\nK:D\nF C")) == [F4, 66, 66, 61]
    assert beats(tune("A\nL:1/4\nA [L:1/16] A")) == [0.5, 1, 0.25]
    assert pitches(tune("A % a comment with notes CDE\nB")) == [A4, B4]
    # headers before K: are not notes, even those that look like them
    assert pitches("X:1\nT:Cead Ban\nC:Anon\nK:G\nF\n") == [66]
    assert pitches("CDE") == [C4, D4, E4]  # no header at all: C major


def test_unreadable_symbols_are_skipped_and_counted():
    with pytest.warns(ABCWarning, match=r"skipped 3 unreadable.*'#'.*'&'"):
        got = pitches(tune("A # B & c ;"))
    assert got == [A4, B4, C5]
    with pytest.warns(ABCWarning, match="K:Q Lydian"):
        assert pitches(tune("F", key="Q Lydian")) == [F4]
    # no length, or a pitch beyond MIDI's 0..127 (kept as a rest, so the rhythm holds)
    high = "c" + "'" * 6  # c with six octave marks: MIDI 144
    with pytest.warns(ABCWarning, match=r"skipped 3 .*'A/0'.*'B0'.*c''''''"):
        assert parse_abc(tune(f"A/0 B0 {high} d")) == [(None, 0.5), (D5, 0.5)]
    # a line that starts like a field but is a note or rest before a repeat
    assert pitches(tune("z:|\nA:|")) == [None, None, A4, A4]


def test_garbage_never_raises():
    rng = np.random.default_rng(0)
    alphabet = np.array(list("ABCDEFGabcdefgz,'^_=/0123456789|:[]()<>-{}\"!~ \nXKLM" + "/0" * 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ABCWarning)
        for _ in range(300):
            text = "".join(rng.choice(alphabet, rng.integers(1, 80)))
            notes = parse_abc(text)
            assert all(b > 0 and np.isfinite(b) for _, b in notes)
            assert isinstance(is_valid_song(text), bool)


def test_every_song_of_the_corpus_parses():
    songs = datasets.irish_songs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ABCWarning)
        parsed = [parse_abc(s) for s in songs]
    assert sum(len(n) > 0 for n in parsed) >= 0.95 * len(songs)
    assert all(is_valid_song(s) for s in songs[::20])
    # the first song, a hornpipe in cut time: two 8-bar parts, each played twice, 32 beats a
    # part (a one-beat pickup and a three-beat last bar), A (69) then B C# D from "(3ABc|dAFA"
    first = parsed[0]
    assert sum(b for _, b in first) == pytest.approx(128)
    assert [p for p, _ in first[:4]] == [A4, B4, C5 + 1, D5]


def test_is_valid_song():
    assert is_valid_song(tune("ABcd efga"))
    assert not is_valid_song("ABcd efga")  # no X: and K: fields
    assert not is_valid_song(tune("A z B"))  # too few notes
    assert not is_valid_song("X:1\nK:G\n" + "###")


def test_synthesize_length_silence_and_pitch():
    sr = 8000
    notes = [(A4, 1.0), (None, 0.5), (C5, 1 / 3), (E5, 1 / 3), (G5, 1 / 3), (A4, 0.25)]
    y = synthesize(notes, tempo_bpm=90, sample_rate=sr)
    total = sum(b for _, b in notes) * 60 / 90 * sr
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) == round(total)
    assert np.abs(y).max() <= 1 and np.abs(y).max() > 0.5
    beat = 60 / 90 * sr
    assert np.all(y[int(beat) + 1:int(1.5 * beat) - 1] == 0)  # the rest is silent
    assert abs(y[0]) < 1e-3 and abs(y[int(beat) - 1]) < 0.05  # faded in and out: no clicks
    # the first note sounds at 440 Hz: the largest peak of its spectrum
    seg = y[:int(beat)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    freq = np.fft.rfftfreq(len(seg), 1 / sr)
    assert abs(freq[spectrum.argmax()] - 440) < 2 * sr / len(seg)
    assert len(synthesize([], 120, sr)) == 0
    assert len(synthesize([(None, 2.0)], 120, sr)) == sr  # two beats at 120 bpm: a second
    with pytest.raises(ValueError, match="positive"):
        synthesize(notes, tempo_bpm=0)
    with pytest.raises(ValueError, match="max_seconds"):
        synthesize([(A4, 99999.0)])  # a generated "A99999" is not rendered for 14 hours


def _read_wav(path):
    with wave.open(str(path), "rb") as w:
        return (w.getnchannels(), w.getsampwidth(), w.getframerate(),
                np.frombuffer(w.readframes(w.getnframes()), "<i2"))


def test_write_wav_reads_back(tmp_path):
    y = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0], np.float32)
    path = write_wav(tmp_path / "x.wav", y, 16000)
    channels, width, rate, data = _read_wav(path)
    assert (channels, width, rate) == (1, 2, 16000)
    np.testing.assert_array_equal(data, [0, 16384, -16384, 32767, -32767, 32767, -32767])
    stereo = write_wav(tmp_path / "s.wav", np.stack([y, -y], 1), 8000)
    channels, _, _, data = _read_wav(stereo)
    assert channels == 2 and len(data) == 2 * len(y)
    with pytest.raises(ValueError, match="NaN"):
        write_wav(tmp_path / "n.wav", np.array([0.0, np.nan]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.wav", "x.wav"]


def test_write_wav_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "song.wav"
    write_wav(path, np.zeros(10), 8000)
    before = path.read_bytes()

    def broken(self, data):
        raise OSError("disk full")

    monkeypatch.setattr(wave.Wave_write, "writeframes", broken)
    with pytest.raises(OSError, match="disk full"):
        write_wav(path, np.ones(100), 8000)
    # the old file is untouched and no temporary file is left behind
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["song.wav"]


def test_abc_to_wav(tmp_path):
    text = tune("A2 B2 | c4 :|", key="G Major")
    path = abc_to_wav(text, tmp_path / "t.wav", tempo_bpm=120, sample_rate=8000)
    _, _, rate, data = _read_wav(path)
    assert rate == 8000 and len(data) == 8 * 0.5 * 8000  # 8 beats at 2 beats a second
    with pytest.raises(ValueError, match="no notes"):
        abc_to_wav(tune("z4"), tmp_path / "r.wav")

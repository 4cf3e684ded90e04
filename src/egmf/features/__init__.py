"""Raw media to features: audio (openSMILE, librosa, Whisper), video (faces), transcripts."""

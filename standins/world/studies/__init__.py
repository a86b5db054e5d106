"""Demo study generators: study inputs in real file formats, planted from the synthetic world's truth (SIMULATED)."""

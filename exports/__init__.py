"""Evidence exports: PDF/A transcripts, EML, RSMF, CSV and verifiable bundles (issue 5)."""

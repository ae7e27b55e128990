"""Sources of certificates and references to them; imports nothing of certmon outside itself."""

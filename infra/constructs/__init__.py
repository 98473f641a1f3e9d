"""One construct per capability of the Renkei stack."""

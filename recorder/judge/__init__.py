"""judge: read a written file back, grade it against the NBO tiers and describe it in words.

Named ``judge`` rather than ``read`` so that importing it never shadows the public function
``nbo_recorder.read`` (a subpackage becomes an attribute of its parent when imported).
"""

"""Brain Imaging Workbench: brain MR / CT deep-learning models with visual explanations.

For research and teaching only, not for diagnosis.
"""

__version__ = "0.1.0"

DISCLAIMER = "For research and teaching only, not for diagnosis or any clinical decision."

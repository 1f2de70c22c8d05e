import math


def circle_area(radius):
    """Area of a circle of the given radius."""
    return 

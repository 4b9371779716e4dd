"""The instructor's semester around grading: grades for the LMS (:mod:`lms`)."""

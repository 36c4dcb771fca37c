"""The ground floor: torch-free rules and utilities every other layer stands on.

settings, errors, hashing and atomic files; the domain rules (job statuses and
their transitions, stages, the Greulich-Pyle comparison, model identity); image
decoding and the checks a submission must pass. Nothing here imports another
package of this project.
"""

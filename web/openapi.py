"""The OpenAPI 3 document for /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from core.submission import MAX_AGE_YEARS

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What was wrong, for a person to read."},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "One message per invalid form field.",
        },
    },
}

_ASSESSMENT = {
    "type": "object",
    "required": ["id", "status", "url", "page_url", "created_at", "sex", "disclaimer"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
        "url": {"type": "string", "description": "This resource."},
        "page_url": {"type": "string", "description": "The job's HTML page."},
        "image_url": {"type": "string", "description": "The uploaded radiograph as PNG."},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": "string", "format": "date-time", "nullable": True},
        "finished_at": {"type": "string", "format": "date-time", "nullable": True},
        "error": {"type": "string", "nullable": True, "description": "Why the job failed."},
        "sex": {"type": "string", "enum": ["M", "F"]},
        "chronological_age_months": {"type": "number", "nullable": True},
        "reference": {"type": "string", "nullable": True},
        "result": {
            "nullable": True,
            "description": "Present when status is succeeded.",
            "type": "object",
            "properties": {
                "bone_age_months": {"type": "number"},
                "bone_age": {"type": "string", "example": "10 y 4 m"},
                "stage": {"type": "string", "enum": ["Child", "Adolescent", "Adult"]},
                "heatmap_url": {"type": "string", "nullable": True},
                "model": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "recipe": {"type": "string"},
                        "trained_on": {"type": "string"},
                        "label": {"type": "string", "nullable": True},
                        "not_for_clinical_use": {"type": "boolean"},
                    },
                },
                "comparison": {
                    "nullable": True,
                    "description": "Greulich-Pyle comparison, when a chronological age was given.",
                    "type": "object",
                    "properties": {
                        "chronological_age_months": {"type": "number"},
                        "expected_bone_age_months": {"type": "number", "nullable": True},
                        "sd_months": {"type": "number", "nullable": True},
                        "sd_score": {"type": "number", "nullable": True},
                        "reading": {
                            "type": "string",
                            "enum": ["delayed", "normal", "advanced", "indeterminate"],
                        },
                    },
                },
                "timings": {
                    "type": "object",
                    "properties": {
                        "queue_wait_seconds": {"type": "number", "nullable": True},
                        "inference_seconds": {"type": "number", "nullable": True},
                    },
                },
            },
        },
        "disclaimer": {"type": "string"},
    },
}

_SUBMISSION = {
    "type": "object",
    "required": ["image", "sex"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "PNG, JPEG or DICOM."},
        "sex": {"type": "string", "enum": ["M", "F"]},
        "age_years": {"type": "integer", "minimum": 0, "maximum": MAX_AGE_YEARS},
        "age_months": {"type": "integer", "minimum": 0, "maximum": 11},
        "birth_date": {"type": "string", "format": "date", "description": "With study_date, instead of age_years/age_months."},
        "study_date": {"type": "string", "format": "date"},
        "reference": {
            "type": "string",
            "maxLength": 64,
            "description": "Optional pseudonymous patient/study reference; never a name.",
        },
    },
}


def _json(schema_ref: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def openapi_document(server_url: str = "") -> dict:
    id_parameter = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    png = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "boneage assessment API",
            "version": "1",
            "description": "Queue a hand radiograph for bone-age assessment and fetch the result. "
            "Results are decision support, not a diagnosis.",
        },
        "servers": [{"url": server_url or "/"}],
        "paths": {
            "/api/v1/assessments": {
                "post": {
                    "summary": "Submit a radiograph; the job is queued",
                    "operationId": "createAssessment",
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/Submission"}}},
                    },
                    "responses": {
                        "202": _json("Assessment", "Accepted and queued; poll `url`."),
                        "400": _json("Error", "The submission is invalid; nothing was stored."),
                        "413": _json("Error", "The upload is larger than the limit."),
                        "503": _json("Assessment", "Stored but could not be queued; the job is failed."),
                    },
                },
                "get": {
                    "summary": "Recent assessments, newest first",
                    "operationId": "listAssessments",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50, "maximum": 200}}
                    ],
                    "responses": {
                        "200": {
                            "description": "Recent assessments",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "assessments": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Assessment"},
                                            }
                                        },
                                    }
                                }
                            },
                        }
                    },
                },
            },
            "/api/v1/assessments/{id}": {
                "get": {
                    "summary": "Status and, when done, the result",
                    "operationId": "getAssessment",
                    "parameters": [id_parameter],
                    "responses": {
                        "200": _json("Assessment", "The assessment"),
                        "404": _json("Error", "No such assessment"),
                    },
                }
            },
            "/api/v1/assessments/{id}/heatmap.png": {
                "get": {
                    "summary": "Grad-CAM overlay on the radiograph",
                    "operationId": "getHeatmap",
                    "parameters": [id_parameter],
                    "responses": {"200": {"description": "PNG", **png}, "404": _json("Error", "Not (yet) available")},
                }
            },
            "/api/v1/assessments/{id}/image.png": {
                "get": {
                    "summary": "The uploaded radiograph, as PNG",
                    "operationId": "getImage",
                    "parameters": [id_parameter],
                    "responses": {"200": {"description": "PNG", **png}, "404": _json("Error", "No such assessment")},
                }
            },
        },
        "components": {"schemas": {"Assessment": _ASSESSMENT, "Submission": _SUBMISSION, "Error": _ERROR}},
    }

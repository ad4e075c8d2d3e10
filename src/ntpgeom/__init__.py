"""ntpgeom: the implicit geometry of next-token prediction, reproduced end to end.

corpus → distinct-context tables (:mod:`ntpgeom.data.table`) → L*, S̄ and the NTP-SVM solution L^mm
(:mod:`ntpgeom.theory.svm`) → UFM and transformer training (:mod:`ntpgeom.train.engine`) →
geometry
comparisons (:mod:`ntpgeom.metrics.geometry`) → figures and report.
"""

__version__ = "0.1.0"

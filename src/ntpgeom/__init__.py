"""ntpgeom: the implicit geometry of next-token prediction, reproduced end to end.

corpus → distinct-context tables (:mod:`ntpgeom.table`) → L*, S̄ and the NTP-SVM solution L^mm
(:mod:`ntpgeom.svm`) → UFM and transformer training (:mod:`ntpgeom.train`) → geometry
comparisons (:mod:`ntpgeom.geometry`) → figures and report.
"""

__version__ = "0.1.0"

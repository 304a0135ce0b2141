"""The deployable stack as data: ``template.yaml`` (CloudFormation) and ``local/`` (kinesalite).

Not code: it is a package only so the template and the kinesalite launcher travel as
package data and are found through :mod:`importlib.resources` in any install.
"""

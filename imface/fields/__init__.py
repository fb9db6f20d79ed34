"""imface.fields"""

# Passed to CMake as CMAKE_PROJECT_INCLUDE by msgs/build.sh.
#
# PyPI's ROS wheels export <pkg>__rosidl_generator_py targets whose INTERFACE_INCLUDE_DIRECTORIES
# name folders of the machine the wheels were built on (/opt/python/cp311-cp311/include/python3.11
# and its NumPy include folder). CMake refuses to generate while an imported target names a folder
# that does not exist. At the end of configuration (when every find_package has run) this replaces
# such entries with this machine's Python and NumPy include folders and drops any other missing
# folder. Installed files are not touched.

if(NOT Python3_EXECUTABLE)
  message(FATAL_ERROR "fix_wheel_includes.cmake: pass -DPython3_EXECUTABLE=<the venv's python3>")
endif()
execute_process(
  COMMAND "${Python3_EXECUTABLE}" -c
    "import sysconfig, numpy; print(sysconfig.get_paths()['include'] + ';' + numpy.get_include(), end='')"
  OUTPUT_VARIABLE _segnet_local_includes
  RESULT_VARIABLE _segnet_result)
if(NOT _segnet_result EQUAL 0)
  message(FATAL_ERROR "fix_wheel_includes.cmake: ${Python3_EXECUTABLE} cannot report its include folders")
endif()
list(GET _segnet_local_includes 0 SEGNET_LOCAL_PYTHON_INCLUDE)
list(GET _segnet_local_includes 1 SEGNET_LOCAL_NUMPY_INCLUDE)

function(segnet_fix_wheel_includes)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  set(_count 0)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_fixed "")
    set(_changed FALSE)
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _fixed "${_dir}")
      elseif(_dir MATCHES "numpy")
        list(APPEND _fixed "${SEGNET_LOCAL_NUMPY_INCLUDE}")
        set(_changed TRUE)
      elseif(_dir MATCHES "/include/python[0-9.]+$")
        list(APPEND _fixed "${SEGNET_LOCAL_PYTHON_INCLUDE}")
        set(_changed TRUE)
      else()
        set(_changed TRUE)  # a missing folder of the wheel builder: nothing to include from it
      endif()
    endforeach()
    if(_changed)
      list(REMOVE_DUPLICATES _fixed)
      set_property(TARGET ${_target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
      math(EXPR _count "${_count} + 1")
    endif()
  endforeach()
  message(STATUS "fix_wheel_includes: include folders of ${_count} imported targets pointed at "
                 "${SEGNET_LOCAL_PYTHON_INCLUDE} and ${SEGNET_LOCAL_NUMPY_INCLUDE}")
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL segnet_fix_wheel_includes)

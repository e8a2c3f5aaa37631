# Backends: memory and local always run; S3, Azure and WebDAV run when the project's test
# script has started their servers and exported OBJECTSTOREX_TEST_* (see
# test/support/test_backends.ex). A plain `mix test` excludes the missing ones and says so;
# with OBJECTSTOREX_TEST_REQUIRE=s3,azure,webdav a missing one fails the run instead.

alias ObjectStoreX.TestBackends

known = Enum.map(TestBackends.all(), &Atom.to_string/1)
required = TestBackends.required()
missing = TestBackends.missing()

case required -- known do
  [] ->
    :ok

  unknown ->
    raise "OBJECTSTOREX_TEST_REQUIRE names unknown backend(s) #{Enum.join(unknown, ", ")}; " <>
            "known: #{Enum.join(known, ", ")}"
end

case Enum.filter(missing, fn {backend, _} -> Atom.to_string(backend) in required end) do
  [] ->
    :ok

  absent ->
    raise "OBJECTSTOREX_TEST_REQUIRE=#{System.get_env("OBJECTSTOREX_TEST_REQUIRE")} but " <>
            Enum.map_join(absent, "; ", fn {b, why} -> "#{b}: #{why}" end) <>
            " - its server is required and not configured, refusing to skip its tests"
end

if missing != [] do
  IO.puts(
    "ObjectStoreX tests: excluding backends " <>
      Enum.map_join(missing, ", ", fn {b, why} -> "#{b} (#{why})" end) <>
      "; set OBJECTSTOREX_TEST_REQUIRE to make a missing backend fail the run"
  )
end

# A test that needs both the S3 and the Azure server is tagged :s3_and_azure.
cross = if Enum.any?(missing, fn {b, _} -> b in [:s3, :azure] end), do: [:s3_and_azure], else: []

ExUnit.start(exclude: Enum.map(missing, fn {backend, _} -> {:backend, backend} end) ++ cross)
